"""Build the example own-domain data set: houseplant care at Fern & Co., a small fictional plant shop.

Domain: caring for about 25 common houseplants (light, watering, humidity, temperature, pet safety,
propagation, common problems, size) plus general shop questions (repotting, fertilizing, drainage, pests,
store policies). Every sentence is generated here from a hand-written fact table and hand-written templates;
the text was written for this project (our own work, released as CC0 / public domain). Facts follow common
houseplant-care knowledge; pet toxicity follows the ASPCA's toxic / non-toxic plant lists. Fern & Co., its
policies, opening hours and customers are made up.

Run ``python labs/own/example/build.py``: stdlib only and deterministic (``random.Random(0)``), it (re)writes
three files next to itself:

* ``corpus.txt`` -- plain text for continued pretraining: one document per line, no empty lines; each
  document is 1-4 sentences of prose (care guides, shop notes, customer stories).
* ``instructions.jsonl`` -- Alpaca records, one JSON object per line:
  ``{"instruction": ..., "input": "" or extra context, "output": ...}``; outputs are one or two short
  sentences (at most 40 words); no (instruction, input) pair repeats.
* ``pairs.jsonl`` -- preference pairs, one JSON object per line:
  ``{"prompt": ..., "chosen": ..., "rejected": ..., "how": ...}``; ``prompt`` is the user turn (instruction,
  then a newline and the input if there is one), ``chosen`` a correct, concise answer, ``rejected`` an answer
  worse in the one way named by ``how``: ``wrong_fact`` (a confident wrong fact), ``vague`` (a generic
  non-answer), ``rambling`` (the right answer buried in off-topic chatter, at least twice as long) or
  ``unsafe`` (advice that harms the plant or a pet). Pair prompts are mostly phrased differently from the
  instruction prompts; the facts are the same.
"""
from __future__ import annotations

import json
import random
from pathlib import Path

HERE = Path(__file__).resolve().parent
MAX_WORDS = 40  # longest instruction output / chosen answer, in words

# --------------------------------------------------------------------------------------------
# The fact table (hand-written). Phrases are written to slot into the templates below:
#   light: noun phrase ("bright, indirect light"); low: can it live in a dim spot ("yes", "partial", "no");
#   low_effect: what it does in a dim spot (verb phrase); water_when: clause after "water when";
#   freq: "every ..." phrase; humidity: "low" | "average" | "high"; temp: (low, high) in Fahrenheit;
#   propagate: imperative verb phrase; problems: (symptom noun phrase, cause noun phrase, fix sentence);
#   size: verb phrase; rate: "slow" | "moderate" | "fast"; kind picks the potting mix.
# --------------------------------------------------------------------------------------------
CALCIUM = "calcium oxalate crystals"
MOUTH = "mouth irritation, drooling, and vomiting"

PLANTS = [
    dict(name="snake plant", plural="snake plants", latin="Dracaena trifasciata", origin="West Africa",
         kind="succulent", light="anything from low light to bright, indirect light", low="yes",
         low_effect="grows more slowly", water_when="the soil has dried out completely",
         freq="every 2 to 3 weeks, and about once a month in winter", humidity="low",
         hum_note="Ordinary household air is fine.", temp=(60, 85), temp_tip="",
         toxic=True, toxin="saponins", symptoms="drooling, nausea, and vomiting", toxic_note="",
         propagate="cut a leaf into sections and root them in water or soil, or divide the rhizomes when you "
                   "repot", method="leaf", prop_tip="Leaf cuttings of variegated types usually lose the yellow edge.",
         problems=[("soft, mushy leaves", "overwatering that has led to root rot",
                    "Let the soil dry out fully, and repot into gritty mix if the roots are brown and soft.")],
         size="grows 2 to 4 feet tall", rate="slow",
         tip="It is one of the hardest plants to kill, as long as nobody overwaters it."),
    dict(name="pothos", plural="pothos plants", latin="Epipremnum aureum", origin="French Polynesia",
         kind="aroid", light="medium to bright, indirect light", low="yes",
         low_effect="grows more slowly and loses some of its variegation",
         water_when="the top inch or two of soil is dry", freq="about every 1 to 2 weeks", humidity="average",
         hum_note="Average household humidity is fine.", temp=(65, 85), temp_tip="",
         toxic=True, toxin=CALCIUM, symptoms=MOUTH, toxic_note="",
         propagate="take a stem cutting with at least one node and root it in water or moist soil",
         method="cutting", prop_tip="Roots usually appear within two to four weeks.",
         problems=[("yellow leaves", "overwatering or soil that stays soggy",
                    "Let the top couple of inches dry before watering, and make sure the pot drains.")],
         size="trails vines 6 to 10 feet long", rate="fast",
         tip="Its vines can trail from a high shelf or climb a moss pole."),
    dict(name="monstera", plural="monsteras", latin="Monstera deliciosa", origin="southern Mexico and Central America",
         kind="aroid", light="bright, indirect light", low="partial",
         low_effect="grows slowly and makes small leaves without splits",
         water_when="the top 2 inches of soil are dry", freq="about every 1 to 2 weeks", humidity="average",
         hum_note="It enjoys 50% humidity or more but adapts well to normal homes.", temp=(65, 85), temp_tip="",
         toxic=True, toxin=CALCIUM, symptoms=MOUTH, toxic_note="",
         propagate="take a stem cutting with a node, ideally one with an aerial root, and root it in water or "
                   "damp sphagnum moss", method="cutting",
         prop_tip="A leaf without a piece of stem and a node will never grow into a new plant.",
         problems=[("yellow leaves", "overwatering or poor drainage",
                    "Let the top 2 inches dry between waterings and use a pot with drainage holes."),
                   ("new leaves without splits", "too little light, or a plant that is still young",
                    "Move it to a brighter spot with plenty of indirect light.")],
         size="grows 6 to 8 feet tall with a moss pole", rate="moderate",
         tip="The famous holes and splits only appear on mature leaves grown in good light."),
    dict(name="ZZ plant", plural="ZZ plants", latin="Zamioculcas zamiifolia", origin="eastern Africa",
         kind="general", light="low to bright, indirect light", low="yes", low_effect="grows more slowly",
         water_when="the soil has dried out completely", freq="every 2 to 3 weeks", humidity="low",
         hum_note="Ordinary household air is fine.", temp=(60, 85), temp_tip="",
         toxic=True, toxin=CALCIUM, symptoms=MOUTH, toxic_note="",
         propagate="divide the rhizomes when you repot, or root single leaflets or stems in moist soil",
         method="division", prop_tip="Cuttings are slow and can take a few months to form a new rhizome.",
         problems=[("yellow leaves", "overwatering, since its rhizomes store water",
                    "Let the soil dry out completely before watering again, and water even less in winter.")],
         size="grows 2 to 3 feet tall", rate="slow",
         tip="Its potato-like rhizomes store water, so it shrugs off a missed watering."),
    dict(name="spider plant", plural="spider plants", latin="Chlorophytum comosum", origin="southern Africa",
         kind="general", light="bright, indirect light", low="partial",
         low_effect="survives but turns paler and makes fewer babies", water_when="the top inch of soil is dry",
         freq="about once a week", humidity="average",
         hum_note="Average humidity is fine, though very dry air can brown the tips.", temp=(60, 80), temp_tip="",
         toxic=False, toxin="", symptoms="", toxic_note="",
         propagate="pot up the baby plantlets that hang from its runners, in soil or after rooting them in water",
         method="plantlets", prop_tip="Babies that already show little roots take off fastest.",
         problems=[("brown leaf tips", "fluoride and salts in tap water, or dry air",
                    "Water with filtered or rain water and trim the brown tips with clean scissors.")],
         size="spreads 1 to 2 feet wide, with runners trailing below", rate="fast",
         tip="A happy one sends out long runners with baby plants at the ends."),
    dict(name="peace lily", plural="peace lilies", latin="Spathiphyllum", origin="the tropical Americas",
         kind="general", light="medium to low, indirect light", low="yes", low_effect="flowers less",
         water_when="the top inch of soil is dry", freq="about once a week", humidity="high",
         hum_note="A pebble tray or humidifier helps, especially in winter.", temp=(65, 85), temp_tip="",
         toxic=True, toxin=CALCIUM, symptoms=MOUTH,
         toxic_note="Unlike true lilies, it doesn't cause kidney failure in cats.",
         propagate="divide the clump into sections, each with roots and a few leaves, when you repot",
         method="division", prop_tip="Each section should have its own roots and at least three leaves.",
         problems=[("drooping leaves", "thirst, since it wilts dramatically when its soil dries out",
                    "Give it a thorough watering, and it should perk up within a few hours."),
                   ("brown leaf tips", "minerals in tap water or dry air",
                    "Use filtered water and raise the humidity around it.")],
         size="grows 1 to 3 feet tall", rate="moderate",
         tip="It droops visibly when thirsty, which makes it an easy plant to read."),
    dict(name="fiddle-leaf fig", plural="fiddle-leaf figs", latin="Ficus lyrata", origin="West Africa",
         kind="general", light="bright, indirect light with a little gentle morning sun", low="no",
         low_effect="drops leaves and stops growing", water_when="the top 2 inches of soil are dry",
         freq="about every 1 to 2 weeks", humidity="average",
         hum_note="Moderate humidity is ideal; just keep it away from drafts and heaters.", temp=(60, 85),
         temp_tip="Cold drafts make it drop leaves.", toxic=True, toxin="irritating milky sap",
         symptoms=MOUTH, toxic_note="",
         propagate="root a stem cutting in water, or air layer a branch", method="cutting",
         prop_tip="Cuttings root best in a warm, bright spot.",
         problems=[("sudden leaf drop", "a sudden change, like a move, a cold draft, or new light",
                    "Keep it in one bright, draft-free spot so it can settle."),
                   ("brown leaf spots", "overwatering and root rot",
                    "Let the soil dry 2 inches down between waterings and check that the pot drains.")],
         size="grows 6 to 10 feet tall", rate="moderate",
         tip="It dislikes being moved, so choose its spot carefully and then leave it alone."),
    dict(name="rubber plant", plural="rubber plants", latin="Ficus elastica", origin="South and Southeast Asia",
         kind="general", light="bright, indirect light", low="partial",
         low_effect="gets leggy and drops its lower leaves", water_when="the top inch or two of soil is dry",
         freq="about every 1 to 2 weeks", humidity="average", hum_note="Average household humidity is fine.",
         temp=(60, 85), temp_tip="", toxic=True, toxin="irritating milky sap", symptoms=MOUTH, toxic_note="",
         propagate="root a stem cutting in water or soil, or air layer a branch", method="cutting",
         prop_tip="Wear gloves, because the white sap is sticky and irritating.",
         problems=[("dropping leaves", "cold drafts, a sudden move, or overwatering",
                    "Keep it in a warm, bright spot and let the top inch or two dry before watering.")],
         size="grows 6 to 10 feet tall", rate="moderate",
         tip="Wiping its big glossy leaves with a damp cloth keeps them shining."),
    dict(name="aloe vera", plural="aloe vera plants", latin="Aloe barbadensis", origin="the Arabian Peninsula",
         kind="succulent", light="bright light, including some direct sun", low="no",
         low_effect="stretches, turns pale, and its leaves flop over", water_when="the soil has dried out completely",
         freq="every 2 to 3 weeks, and less in winter", humidity="low", hum_note="Dry indoor air suits it well.",
         temp=(55, 80), temp_tip="", toxic=True, toxin="saponins and anthraquinones",
         symptoms="vomiting, diarrhea, and lethargy", toxic_note="",
         propagate="separate the pups at its base, let them dry for a day or two, and pot them in cactus mix",
         method="pups", prop_tip="Leaf cuttings of aloe almost always rot, so stick to the pups.",
         problems=[("brown, mushy leaves", "overwatering",
                    "Let the soil dry out completely, and repot into gritty cactus mix if the roots are soft."),
                   ("thin, curling leaves", "underwatering",
                    "Give it a deep watering once the soil is dry, and the leaves should plump back up.")],
         size="grows 1 to 2 feet tall", rate="slow",
         tip="Its thick leaves store water, so it forgives a forgotten watering far more than an extra one."),
    dict(name="jade plant", plural="jade plants", latin="Crassula ovata", origin="South Africa",
         kind="succulent", light="bright light with at least four hours of direct sun", low="no",
         low_effect="gets leggy and drops leaves", water_when="the soil has dried out completely",
         freq="every 2 to 3 weeks, and less in winter", humidity="low", hum_note="Dry indoor air suits it well.",
         temp=(55, 80), temp_tip="", toxic=True, toxin="",
         symptoms="vomiting, lethargy, and loss of coordination", toxic_note="",
         propagate="let a stem or leaf cutting dry for a few days until it calluses, then set it on barely moist "
                   "cactus mix", method="leaf", prop_tip="Stem cuttings grow into a good-sized plant much faster.",
         problems=[("wrinkled leaves", "underwatering",
                    "Water deeply once the soil is dry, and the leaves should plump back up."),
                   ("a soft stem and falling leaves", "overwatering",
                    "Stop watering until the soil is dry, and repot into cactus mix if the roots have rotted.")],
         size="grows 2 to 3 feet tall over many years", rate="slow",
         tip="With enough sun, the leaf edges can blush red."),
    dict(name="Boston fern", plural="Boston ferns", latin="Nephrolepis exaltata", origin="the tropical Americas",
         kind="fern", light="bright, indirect light", low="partial", low_effect="thins out and sheds fronds",
         water_when="the surface of the soil just starts to feel dry",
         freq="every few days, so the soil stays evenly moist but never soggy", humidity="high",
         hum_note="Use a humidifier or pebble tray, or keep it in a bright bathroom.", temp=(60, 75),
         temp_tip="", toxic=False, toxin="", symptoms="", toxic_note="",
         propagate="divide the root ball into sections when you repot, or pot up the small plants on its runners",
         method="division", prop_tip="Keep new divisions humid until they push out fresh fronds.",
         problems=[("brown, crispy fronds", "dry air or soil that was allowed to dry out",
                    "Keep the soil evenly moist and raise the humidity with a humidifier or pebble tray.")],
         size="spreads 1 to 3 feet wide", rate="moderate",
         tip="It looks best in a hanging basket where its fronds can arch."),
    dict(name="calathea", plural="calatheas", latin="Goeppertia (Calathea)", origin="tropical South America",
         kind="general", light="medium to bright, indirect light, out of direct sun", low="partial",
         low_effect="holds on but loses its bold leaf patterns", water_when="the top inch of soil is dry",
         freq="about once a week, keeping the soil lightly moist", humidity="high",
         hum_note="Aim for 50% or more with a humidifier, or its leaf edges will crisp.", temp=(65, 80),
         temp_tip="", toxic=False, toxin="", symptoms="", toxic_note="",
         propagate="divide the clump at the roots when you repot, since it does not root from cuttings",
         method="division", prop_tip="Give new divisions extra humidity while they settle.",
         problems=[("crispy brown leaf edges", "dry air or minerals in tap water",
                    "Raise the humidity and water with filtered, distilled, or rain water."),
                   ("curling leaves", "thirst or very dry air",
                    "Water once the top inch is dry and add humidity nearby.")],
         size="grows 1 to 2 feet tall", rate="moderate",
         tip="Its leaves fold up at night and open in the morning, which is why it is called a prayer plant."),
    dict(name="philodendron", plural="philodendrons", latin="Philodendron hederaceum",
         origin="Central America and the Caribbean", kind="aroid", light="medium to bright, indirect light",
         low="yes", low_effect="grows more slowly with smaller leaves", water_when="the top inch of soil is dry",
         freq="about once a week", humidity="average",
         hum_note="Average humidity is fine, though it grows lusher with more.", temp=(65, 80), temp_tip="",
         toxic=True, toxin=CALCIUM, symptoms=MOUTH, toxic_note="",
         propagate="take a stem cutting with at least one node and root it in water or moist soil",
         method="cutting", prop_tip="Several cuttings in one pot make a fuller plant.",
         problems=[("yellow leaves", "overwatering",
                    "Let the top inch of soil dry before watering and empty the saucer afterward."),
                   ("long bare stems with small leaves", "too little light",
                    "Move it to a brighter spot and trim the leggy vines.")],
         size="trails vines 4 to 8 feet long", rate="fast",
         tip="The heartleaf type is one of the easiest trailing plants for a bookshelf."),
    dict(name="English ivy", plural="English ivy plants", latin="Hedera helix", origin="Europe and western Asia",
         kind="general", light="bright, indirect light", low="partial", low_effect="gets sparse and leggy",
         water_when="the top inch of soil is dry", freq="about once a week", humidity="average",
         hum_note="Moderate humidity is best, because warm, dry air invites spider mites.", temp=(50, 70),
         temp_tip="It prefers cool rooms to warm ones.", toxic=True, toxin="saponins",
         symptoms="vomiting, abdominal pain, and diarrhea", toxic_note="",
         propagate="root stem cuttings a few inches long in water or moist soil", method="cutting",
         prop_tip="Cuttings root easily, often within a couple of weeks.",
         problems=[("fine webbing and speckled leaves", "spider mites, which thrive in warm, dry air",
                    "Rinse the leaves in the shower, treat with insecticidal soap, and raise the humidity.")],
         size="trails vines 6 feet or longer", rate="fast",
         tip="It grows happily on a cool windowsill but suffers near a heater."),
    dict(name="Chinese evergreen", plural="Chinese evergreens", latin="Aglaonema", origin="tropical Asia",
         kind="aroid", light="low to medium, indirect light", low="yes", low_effect="grows more slowly",
         water_when="the top inch or two of soil is dry", freq="about every 1 to 2 weeks", humidity="average",
         hum_note="Average humidity is fine, though it appreciates a little more.", temp=(65, 80),
         temp_tip="Below 60°F its leaves can be damaged.", toxic=True, toxin=CALCIUM, symptoms=MOUTH,
         toxic_note="", propagate="divide the plant at the roots when you repot, or root stem cuttings in water",
         method="division", prop_tip="Divisions settle in faster than cuttings.",
         problems=[("yellow lower leaves", "overwatering or cold temperatures",
                    "Let the soil dry a bit more between waterings and keep it above 60°F.")],
         size="grows 1 to 3 feet tall", rate="slow",
         tip="The darker green varieties handle dim rooms best; pink and red ones want more light."),
    dict(name="string of pearls", plural="strings of pearls", latin="Curio rowleyanus",
         origin="southwestern Africa", kind="succulent",
         light="bright, indirect light with a little gentle direct sun", low="no",
         low_effect="stretches out and its pearls grow sparse", water_when="the soil has dried out completely",
         freq="about every 2 to 3 weeks", humidity="low", hum_note="Dry indoor air suits it well.",
         temp=(60, 80), temp_tip="", toxic=True, toxin="", symptoms="vomiting, diarrhea, and drooling",
         toxic_note="", propagate="lay stem cuttings on top of moist cactus mix so the stems touch the soil",
         method="cutting", prop_tip="Roots form where the stem touches the soil.",
         problems=[("shriveled, flat pearls", "underwatering",
                    "Water thoroughly once the soil is dry, and the pearls should plump back up."),
                   ("mushy, bursting pearls", "overwatering",
                    "Cut back on water, remove mushy strands, and repot into a gritty, fast-draining mix.")],
         size="trails strands 2 to 3 feet long", rate="moderate",
         tip="Its round pearls are actually leaves that store water."),
    dict(name="African violet", plural="African violets", latin="Saintpaulia", origin="Tanzania and Kenya",
         kind="general", light="bright, indirect light, or a grow light for about 12 hours a day", low="no",
         low_effect="stops blooming", water_when="the top of the soil feels dry",
         freq="about once a week, ideally from the bottom", humidity="average",
         hum_note="Moderate humidity is best, but don't mist the fuzzy leaves.", temp=(65, 80),
         temp_tip="Use room-temperature water, since cold water spots the leaves.",
         toxic=False, toxin="", symptoms="", toxic_note="",
         propagate="root a leaf with its stem in moist potting mix, and small plantlets will form at its base",
         method="leaf", prop_tip="Plantlets usually appear after six to eight weeks.",
         problems=[("pale or brown leaf spots", "cold water splashed on the leaves",
                    "Water from the bottom with room-temperature water and keep the leaves dry."),
                   ("no flowers", "not enough light",
                    "Move it to a brighter spot or put it under a grow light for about 12 hours a day.")],
         size="stays about 6 to 12 inches across", rate="slow",
         tip="With enough light it can bloom almost all year."),
    dict(name="orchid", plural="orchids", latin="Phalaenopsis", origin="Southeast Asia", kind="orchid",
         light="bright, indirect light, like an east-facing window", low="no",
         low_effect="keeps its leaves but won't rebloom", water_when="the bark is nearly dry and the roots look silvery",
         freq="about once a week, letting all the water drain away", humidity="high",
         hum_note="Aim for about 50% humidity; a pebble tray under the pot helps.", temp=(65, 80),
         temp_tip="A night drop of about 10°F in fall helps it rebloom.",
         toxic=False, toxin="", symptoms="", toxic_note="",
         propagate="pot up a keiki, the baby plant that sometimes grows on the flower spike, once its roots are "
                   "2 to 3 inches long", method="keiki",
         prop_tip="Most moth orchids are sold as single plants and rarely make keikis.",
         problems=[("mushy brown roots", "overwatering or old, broken-down bark",
                    "Trim the rotten roots and repot into fresh orchid bark."),
                   ("no new flower spike", "too little light or no cooler nights in fall",
                    "Give it a brighter spot and let nights drop about 10°F in autumn.")],
         size="grows 1 to 2 feet tall in bloom", rate="slow",
         tip="Its flowers can last two or three months."),
    dict(name="cast iron plant", plural="cast iron plants", latin="Aspidistra elatior", origin="southern Japan",
         kind="general", light="low to medium, indirect light", low="yes", low_effect="grows very slowly",
         water_when="the top couple of inches of soil are dry", freq="about every 2 weeks", humidity="average",
         hum_note="Ordinary household air is fine.", temp=(45, 85),
         temp_tip="It tolerates cool rooms better than most houseplants.",
         toxic=False, toxin="", symptoms="", toxic_note="",
         propagate="divide the rhizomes into clumps with a few leaves each when you repot", method="division",
         prop_tip="Divisions with at least three leaves recover fastest.",
         problems=[("brown, scorched leaf patches", "direct sun",
                    "Move it out of direct sunlight to a shadier spot.")],
         size="grows 2 to 3 feet tall", rate="slow",
         tip="It earned its name by surviving dark Victorian parlors."),
    dict(name="bird of paradise", plural="birds of paradise", latin="Strelitzia reginae", origin="South Africa",
         kind="general", light="bright light, including a few hours of direct sun", low="no",
         low_effect="grows slowly, leans, and won't bloom", water_when="the top 2 inches of soil are dry",
         freq="about every 1 to 2 weeks", humidity="average",
         hum_note="Average humidity is fine, though it enjoys a bit more.", temp=(65, 85), temp_tip="",
         toxic=True, toxin="", symptoms="mild nausea, vomiting, and drowsiness", toxic_note="",
         propagate="divide the plant at the roots when you repot, keeping several leaves and roots in each section",
         method="division", prop_tip="Divisions may take a year or two to settle.",
         problems=[("split leaves", "natural tearing from air movement or dry air",
                    "It is normal and harmless; a little extra humidity can reduce it."),
                   ("curling leaves", "underwatering",
                    "Water deeply when the top 2 inches of soil are dry.")],
         size="grows 5 to 6 feet tall", rate="moderate",
         tip="Indoors it rarely blooms unless it gets plenty of direct sun."),
    dict(name="parlor palm", plural="parlor palms", latin="Chamaedorea elegans",
         origin="southern Mexico and Guatemala", kind="general", light="low to medium, indirect light", low="yes",
         low_effect="grows more slowly", water_when="the top inch of soil is dry", freq="about every 1 to 2 weeks",
         humidity="high", hum_note="Dry air browns its tips, so a humidifier or pebble tray helps.",
         temp=(65, 80), temp_tip="", toxic=False, toxin="", symptoms="", toxic_note="",
         propagate="divide the pot's clump of stems into smaller groups, though it recovers slowly and most are "
                   "grown from seed", method="division", prop_tip="Handle the roots gently; palms resent disturbance.",
         problems=[("brown leaf tips", "dry air, dry soil, or minerals in tap water",
                    "Water before the soil dries out completely, use filtered water, and raise humidity.")],
         size="grows 2 to 4 feet tall", rate="slow",
         tip="Nurseries plant several seedlings in each pot, which is why it looks so full."),
    dict(name="peperomia", plural="peperomias", latin="Peperomia", origin="tropical Central and South America",
         kind="general", light="medium to bright, indirect light", low="partial",
         low_effect="gets leggy and loses leaf color", water_when="the top half of the soil is dry",
         freq="about every 1 to 2 weeks", humidity="average", hum_note="Average household humidity is fine.",
         temp=(65, 80), temp_tip="", toxic=False, toxin="", symptoms="", toxic_note="",
         propagate="root a leaf or stem cutting in moist soil or water", method="cutting",
         prop_tip="Leaf cuttings root slowly but reliably.",
         problems=[("drooping leaves and mushy stems", "overwatering, since its thick leaves store water",
                    "Let the soil dry more between waterings and use a chunky, fast-draining mix.")],
         size="stays 6 to 12 inches tall", rate="slow",
         tip="There are hundreds of kinds, from rippled leaves to watermelon stripes."),
    dict(name="haworthia", plural="haworthias", latin="Haworthiopsis and Haworthia", origin="South Africa",
         kind="succulent", light="bright, indirect light with a little gentle sun", low="partial",
         low_effect="stretches and loses its compact shape", water_when="the soil has dried out completely",
         freq="about every 2 to 3 weeks, and less in winter", humidity="low", hum_note="Dry indoor air suits it well.",
         temp=(55, 80), temp_tip="", toxic=False, toxin="", symptoms="", toxic_note="",
         propagate="separate the offsets, or pups, at its base and pot them in gritty cactus mix", method="pups",
         prop_tip="Let any torn roots dry for a day before potting.",
         problems=[("red or brown leaves", "too much direct sun",
                    "Move it to bright, indirect light, and new growth will stay green."),
                   ("soft, see-through leaves", "overwatering",
                    "Let the soil dry out completely and repot into gritty mix if the roots have rotted.")],
         size="stays 3 to 6 inches tall", rate="slow",
         tip="It is a pet-safe look-alike for aloe, and small enough for a desk."),
    dict(name="dracaena", plural="dracaenas", latin="Dracaena fragrans and Dracaena marginata",
         origin="tropical Africa and Madagascar", kind="general", light="medium, indirect light", low="yes",
         low_effect="grows more slowly", water_when="the top inch or two of soil is dry",
         freq="about every 1 to 2 weeks", humidity="average", hum_note="Average household humidity is fine.",
         temp=(65, 80), temp_tip="", toxic=True, toxin="saponins",
         symptoms="vomiting, drooling, and loss of appetite", toxic_note="",
         propagate="root a stem cutting or the cut-off top of a cane in water or moist soil", method="cutting",
         prop_tip="The stump left behind usually sprouts new shoots too.",
         problems=[("brown leaf tips", "fluoride in tap water or dry air",
                    "Switch to filtered or rain water and trim the tips at an angle.")],
         size="grows 3 to 6 feet tall", rate="slow",
         tip="It is very sensitive to fluoride, which is common in tap water."),
    dict(name="pilea", plural="pileas", latin="Pilea peperomioides", origin="Yunnan in southern China",
         kind="general", light="bright, indirect light", low="partial",
         low_effect="stretches and grows smaller leaves", water_when="the top inch or two of soil is dry",
         freq="about once a week", humidity="average", hum_note="Average household humidity is fine.",
         temp=(60, 80), temp_tip="", toxic=False, toxin="", symptoms="", toxic_note="",
         propagate="cut off the pups that pop up from the soil, with a bit of root, and pot them up",
         method="pups", prop_tip="Pups are easy to share, which is why it is called the friendship plant.",
         problems=[("a lopsided, leaning stem", "growth toward the light",
                    "Rotate the pot a quarter turn every week."),
                   ("curling, domed leaves", "too much or too little light",
                    "Move it to bright, indirect light out of direct sun.")],
         size="stays about 1 foot tall and wide", rate="moderate",
         tip="Its round, coin-like leaves give it the nickname Chinese money plant."),
]

LEVEL_PHRASE = {"low": "low", "average": "average", "high": "high"}
MIX = {"succulent": "a gritty cactus mix", "aroid": "a chunky mix with bark and perlite",
       "fern": "a rich, moisture-holding potting mix", "orchid": "fresh orchid bark",
       "general": "a well-draining potting mix"}


def cap(s: str) -> str:
    return s[0].upper() + s[1:]


def art(name: str) -> str:
    return ("an " if name[0].lower() in "aeiou" else "a ") + name


def celsius(f: int) -> int:
    return round((f - 32) * 5 / 9)


def ctx(p: dict) -> dict:
    lo, hi = p["temp"]
    return dict(p, a=art(p["name"]), A=cap(art(p["name"])), the="the " + p["name"],
                lo=lo, hi=hi, lc=celsius(lo), hc=celsius(hi))


def words(s: str) -> int:
    return len(s.split())


def fit(*parts: str) -> str:
    """Join sentences, dropping trailing optional ones that would exceed MAX_WORDS."""
    out = parts[0]
    for extra in parts[1:]:
        if extra and words(out + " " + extra) <= MAX_WORDS:
            out += " " + extra
    return out


# --------------------------------------------------------------------------------------------
# Question types over the fact table: phrasings for instructions (QI) and for pairs (QP) are disjoint.
# --------------------------------------------------------------------------------------------
QI = {
    "water": ["How often should I water {a}?", "When should I water my {name}?",
              "What's the right watering schedule for {a}?"],
    "light": ["How much light does {a} need?", "Where should I put my {name}?"],
    "lowlight": ["My {name} is in a dim corner. Is that okay?", "Can {a} grow in low light?"],
    "cat": ["Is {a} safe for my cat?", "Is {a} toxic to cats?"],
    "dog": ["Is {a} toxic to dogs?", "Can my dog be around {a}?"],
    "humidity": ["Does {a} need high humidity?", "What humidity does {a} like?"],
    "temp": ["What temperature does {a} like?", "What's the best temperature range for {a}?"],
    "propagate": ["How do I propagate {a}?", "How can I make new plants from my {name}?"],
    "problem": ["Why does my {name} have {symptom}?", "My {name} has {symptom}. What's wrong?"],
    "size": ["How big does {a} get?", "How large will my {name} grow?"],
    "summary": ["Give me a quick care summary for {a}.", "How do I take care of {a}?"],
}
QP = {
    "water": ["How much water does {a} need?", "I keep forgetting when to water my {name}. What's the rule?",
              "Is there a simple watering rule for {a}?"],
    "light": ["What kind of light is best for {a}?", "Which spot in my home suits {a}?"],
    "lowlight": ["Will {a} survive in a room with only a small north window?",
                 "I live in a shady apartment. Can I keep {a}?"],
    "pets": ["My cat likes to chew on plants. Can I have {a}?", "Are {plural} poisonous to pets?",
             "I have a new puppy. Should I worry about my {name}?"],
    "humidity": ["Should I worry about humidity for my {name}?", "Does my {name} need a humidifier?"],
    "temp": ["How cold is too cold for {a}?", "What room temperature keeps {a} happy?"],
    "propagate": ["What's the easiest way to start a new {name} from my old one?",
                  "I want to share my {name} with a friend. How do I propagate it?"],
    "problem": ["What causes {symptom} on {a}?", "How do I fix {symptom} on my {name}?"],
    "size": ["How much space will {a} need as it grows?", "Will {a} stay small?"],
    "summary": ["What are the basics of {name} care?", "I just bought {a}. What do I need to know?"],
}
PET_ANIMAL = {0: "cats", 1: "cats and dogs", 2: "dogs"}


def low_sentence(c: dict) -> str:
    if c["low"] == "yes" and c["light"].startswith("low"):
        return ""
    return {"yes": "It also tolerates low light.",
            "partial": "It copes with less, but then it {low_effect}.",
            "no": "With too little light it {low_effect}."}[c["low"]].format(**c)


def answers(kind: str, c: dict, extra=None) -> list[str]:
    """Correct answers (paraphrases) for one question type about one plant (context c)."""
    if kind == "water":
        return [fit("Water {a} when {water_when}, which is usually {freq}.".format(**c)),
                fit("Wait until {water_when}, then water thoroughly. For {a} that usually means {freq}.".format(**c)),
                fit("Check the soil first: water {a} only when {water_when}, usually {freq}.".format(**c))]
    if kind == "light":
        return [fit("{A} does best in {light}.".format(**c), low_sentence(c)),
                fit("Give {a} {light}.".format(**c), low_sentence(c))]
    if kind == "lowlight":
        t = {"yes": ["Yes, {a} tolerates low light well, though it {low_effect} there.",
                     "Yes, {a} is one of the better plants for low light; it just {low_effect}."],
             "partial": ["It will survive, but {a} prefers {light}. In a dim corner it {low_effect}.",
                         "Only for a while. {A} really wants {light}, and in low light it {low_effect}."],
             "no": ["Not for long. {A} needs {light}, and in a dim spot it {low_effect}.",
                    "No, {a} needs {light}. In low light it {low_effect}."]}[c["low"]]
        return [fit(s.format(**c)) for s in t]
    if kind in ("cat", "dog", "pets"):
        animal = {"cat": "cats", "dog": "dogs", "pets": "cats and dogs"}[kind]
        if kind == "dog":
            c = dict(c, toxic_note="")
        if c["toxic"]:
            cause = f"its {c['toxin']}" if c["toxin"] else "chewing it"
            return [fit(f"{c['A']} is toxic to {animal}. {cap(cause)} can cause {c['symptoms']}, so keep it out of "
                        "reach.", c["toxic_note"]),
                    fit(f"{c['A']} is toxic to {animal}: {cause} can cause {c['symptoms']}. Keep it well out of "
                        "reach.", c["toxic_note"])]
        return [fit(f"{c['A']} is non-toxic to {animal} according to the ASPCA, though chewing any plant can "
                    "upset a pet's stomach."),
                fit(f"{c['A']} is safe: the ASPCA lists it as non-toxic to {animal}. Eating a lot of any plant can "
                    "still cause a mild tummy upset.")]
    if kind == "humidity":
        t = {"high": ["{A} likes humid air. {hum_note}", "{A} does best with extra humidity. {hum_note}"],
             "average": ["{A} doesn't need high humidity. {hum_note}",
                         "No special humidity is needed for {a}. {hum_note}"],
             "low": ["{A} prefers dry air. {hum_note}", "{A} is happy in dry indoor air and needs no humidifier."]
             }[c["humidity"]]
        return [fit(s.format(**c)) for s in t]
    if kind == "temp":
        tip = c["temp_tip"] or "Keep it away from cold drafts and heating vents."
        return [fit("{A} is happiest between {lo}°F and {hi}°F ({lc} to {hc}°C).".format(**c), tip),
                fit("Keep {a} between {lo}°F and {hi}°F ({lc} to {hc}°C), and don't let it sit below {lo}°F.".format(**c),
                    tip)]
    if kind == "propagate":
        return [fit("To propagate {a}, {propagate}.".format(**c), c["prop_tip"]),
                fit("{P}.".format(P=cap(c["propagate"])), c["prop_tip"])]
    if kind == "problem":
        sym, cause, fix = extra
        return [fit(f"The usual cause of {sym} on {c['a']} is {cause}. {fix}"),
                fit(f"That is usually {cause}. {fix}")]
    if kind == "size":
        return [fit("Indoors, {a} usually {size}, at a {rate} pace.".format(**c)),
                fit("Expect {a} to {size} indoors over time; its growth is {rate}.".format(
                    **dict(c, size=c["size"].replace("grows ", "grow ").replace("trails ", "trail ")
                           .replace("spreads ", "spread ").replace("stays ", "stay "))))]
    if kind == "summary":
        pets = "toxic to pets" if c["toxic"] else "safe for pets"
        base = "Give {a} {light}, and water when {water_when}.".format(**c)
        return [fit(base, "Keep it between {lo}°F and {hi}°F.".format(**c), f"It is {pets}."),
                fit(base, f"It is {pets}.", "Keep it between {lo}°F and {hi}°F.".format(**c))]
    raise KeyError(kind)


# --------------------------------------------------------------------------------------------
# Rejected answers
# --------------------------------------------------------------------------------------------
VAGUE = [
    "Every plant is different, so it really depends on many things.",
    "It depends on your home and your plant, so just keep an eye on it.",
    "There's no single answer; plants are complicated and it varies a lot.",
    "That really varies. Just do what feels right for your {name}.",
    "Honestly, it depends on the situation, so it's hard to say.",
    "Plants all have their own needs, so you'll have to see how it goes.",
    "It can go either way. Some people say one thing and some say another.",
    "Hard to say without more information; lots of factors are involved.",
    "Every {name} is unique, so trust your instincts and see what happens.",
    "It's different for everyone, so try a few things and see what works.",
]
CHATTER = [
    "Oh, that's a great question, and it reminds me of the first plant I ever owned, which sat on my "
    "grandmother's kitchen windowsill for years.",
    "Plants are such a lovely hobby, and there's always something new to learn about them, which is what keeps "
    "it interesting.",
    "By the way, we just got a new shipment of ceramic pots in the shop, and the speckled blue ones are my "
    "personal favorite this season.",
    "Some people like to name their plants, and I think that's a sweet way to remember to check on them.",
    "The weather has been so changeable lately that I've been thinking about seasons in general, not just "
    "for plants.",
    "I was reading an article the other day about the history of indoor gardening, which goes back a lot "
    "further than most people think.",
    "There are so many plant accounts online these days, and some of the photos are honestly stunning.",
    "Also, if you ever visit the shop on a weekend, the café next door makes a really good oat latte.",
    "Let me think about how best to put this, because there are a lot of ways to talk about it.",
    "Plant care can feel overwhelming at first, but most people get the hang of it after a season or two.",
    "I like to keep a little notebook of what I've done with each plant, though I admit I forget to update it.",
    "Of course, every home is a little different, and that's part of what makes houseplants so interesting.",
    "My neighbor has a whole wall of plants in her living room, and it looks like a jungle in there.",
    "We've been talking about starting a plant swap at the shop, so keep an eye out for that.",
    "Anyway, I could talk about plants all day, as my friends will happily tell you.",
]


def rambling(chosen: str, rng: random.Random) -> str:
    pool = rng.sample(CHATTER, len(CHATTER))
    before, after = [pool.pop()], [pool.pop(), pool.pop()]
    while words(" ".join(before + [chosen] + after)) < 2 * words(chosen) + 5:
        after.append(pool.pop())
    return " ".join(before + [chosen] + after)


UNSAFE = {
    "water": ["Water {a} a little every day and let the pot sit in a saucer of standing water so the roots never "
              "dry out.",
              "Give {a} a full jug of water every day, and use a pot without drainage holes so the moisture stays in."],
    "light_shade": ["Put {a} right against a south-facing window in full afternoon sun; the more direct sun, the better.",
                    "Move {a} outdoors into blazing midday summer sun; it will love the extra light."],
    "light_sun": ["Keep {a} in a closet or a windowless bathroom; it barely needs any light.",
                  "Light doesn't matter much, so keep {a} in the darkest corner of the room for months."],
    "lowlight_yes": ["Yes, but give {a} a boost by setting it outside in full midday summer sun every weekend."],
    "lowlight_no": ["Yes, {a} is fine anywhere; you can even keep it in a windowless closet for months."],
    "pets_toxic": ["{A} is completely safe, so don't worry if your pet chews on the leaves.",
                   "It's harmless, so let your pet nibble the leaves; plants are good fiber."],
    "pets_safe": ["It's safe, and to stop your pet chewing it, spray the leaves with tea tree oil.",
                  "It's safe, but put a few mothballs in the soil so your pet stays away from it."],
    "humidity": ["Set {a} on top of a radiator or heating vent; the warm air will give it all the humidity it needs.",
                 "Mist {a} with boiling-hot water a few times a day to keep the air steamy."],
    "temp": ["{A} can handle anything; leave it against a frosty window all winter or right next to a space heater.",
             "Put {a} on the porch overnight in freezing weather to toughen it up."],
    "propagate": ["Cut {a} down to the soil line, soak all the cuttings in bleach for an hour to sterilize them, then "
                  "plant them in soggy soil."],
    "problem": ["Repot {a} into a much bigger pot, water it heavily every day, and feed it full-strength fertilizer "
                "twice a week until it recovers.",
                "Spray the whole plant and soil with a strong garden insecticide, then give it a double dose of "
                "fertilizer."],
    "size": ["To keep {a} small, cut off half of its roots every month and keep it in the dark."],
    "summary": ["Keep {a} in a dark corner, water it every day, and feed it double-strength fertilizer every week "
                "for fast growth."],
}


def unsafe(kind: str, c: dict, rng: random.Random) -> str:
    if kind == "light":
        kind = "light_sun" if c["low"] == "no" else "light_shade"
    elif kind == "lowlight":
        kind = "lowlight_yes" if c["low"] == "yes" else "lowlight_no"
    elif kind == "pets":
        kind = "pets_toxic" if c["toxic"] else "pets_safe"
    return rng.choice(UNSAFE[kind]).format(**c)


GENERIC_LOW_EFFECT = {"yes": "grows more slowly", "partial": "gets leggy and pale",
                      "no": "gets leggy and drops leaves"}
PLANT_SPECIFIC = ["strand", "pearl", "bark", "vine", "cactus", "gritty", "normal", "bloom", "pole", "runner",
                  "years", "tearing", "rhizome", "thick leaves"]


def size_class(size: str) -> int:
    """0 small (inches), 1 medium, 2 large (5 feet or more)."""
    if "inches" in size:
        return 0
    return 2 if max(int(t) for t in size.split() if t.isdigit()) >= 5 else 1


def wrong_fact(kind: str, c: dict, rng: random.Random, extra=None) -> str:
    """This plant's name with another plant's (different) fact, in the chosen answer's style."""
    others = [ctx(q) for q in PLANTS if q["name"] != c["name"]]
    rng.shuffle(others)
    swap = lambda o, **keep: dict(o, name=c["name"], a=c["a"], A=c["A"], plural=c["plural"], **keep)
    if kind == "water":
        o = next(o for o in others if o["water_when"] != c["water_when"] and o["freq"][:12] != c["freq"][:12])
        return answers(kind, swap(o))[0]
    if kind in ("light", "lowlight"):
        # yes <-> a sun lover: the wrong light need is clearly wrong, not a matter of degree
        o = next(o for o in others if (o["low"] == "yes" if c["low"] == "no" else o["light"].startswith("bright light")))
        return answers(kind, swap(o, low_effect=GENERIC_LOW_EFFECT[o["low"]]))[0]
    if kind == "pets":
        o = next(o for o in others if o["toxic"] != c["toxic"])
        return answers(kind, swap(o))[0]
    if kind == "humidity":
        o = next(o for o in others if o["humidity"] == ("low" if c["humidity"] == "high" else "high"))
        return answers(kind, swap(o))[0]
    if kind == "temp":
        shift = rng.choice([-20, 20])  # a range clearly too cold or too hot
        return answers(kind, dict(c, lo=c["lo"] + shift, hi=c["hi"] + shift, lc=celsius(c["lo"] + shift),
                                  hc=celsius(c["hi"] + shift), temp_tip=""))[0]
    if kind == "propagate":
        o = next(o for o in others if o["method"] != c["method"])
        return answers(kind, swap(o, prop_tip=""))[0]
    if kind == "problem":
        sym, cause, _ = extra
        bad = "overwater" in cause
        for o in others:
            for _s, oc, ofix in o["problems"]:
                if (("overwater" in oc) != bad and oc.split()[0] != cause.split()[0]
                        and not any(x in oc + ofix for x in PLANT_SPECIFIC)):
                    return answers(kind, c, (sym, oc, ofix))[0]
    if kind == "size":
        k = size_class(c["size"])
        o = next(o for o in others if abs(size_class(o["size"]) - k) == (1 if k == 1 and size_class(o["size"]) == 2 else 2)
                 and not any(x in o["size"] for x in PLANT_SPECIFIC))
        return answers(kind, swap(o))[0]
    if kind == "summary":
        o = next(o for o in others if o["low"] != c["low"] and o["toxic"] != c["toxic"])
        return answers(kind, swap(o))[0]
    raise KeyError(kind)


# --------------------------------------------------------------------------------------------
# General shop questions: instruction phrasings (i), pair phrasings (p), answer (a), pair answer (pa, optional),
# a confidently wrong answer and an unsafe one (None where unsafe advice makes no sense).
# --------------------------------------------------------------------------------------------
GENERAL = [
    dict(i=["When should I repot a houseplant?", "How do I know my plant needs repotting?"],
         p=["Is it time to move my plant to a bigger pot?", "What's the best season for repotting?"],
         a="Repot in spring or early summer, when roots circle the pot or poke out of the drainage holes. Move up "
           "just 1 to 2 inches in pot width.",
         wrong="Repot in the middle of winter, while the plant is resting, and move it into a pot twice as wide.",
         unsafe="Repot every month, shake off all the old soil, and trim the roots by half to keep it vigorous."),
    dict(i=["How much bigger should a new pot be?"], p=["What size pot should I repot into?"],
         a="Choose a pot only 1 to 2 inches wider than the old one. A much bigger pot holds extra wet soil, which "
           "can rot the roots.",
         wrong="Choose a pot at least three times wider than the old one, so the roots have room for years.",
         unsafe="Pick the biggest pot you can find with no drainage holes, and fill it with heavy garden soil."),
    dict(i=["When should I fertilize my houseplants?", "How often should I feed houseplants?"],
         p=["Do houseplants need fertilizer in winter?", "What's a good fertilizing routine for indoor plants?"],
         a="Feed most houseplants about once a month in spring and summer with a balanced fertilizer at half "
           "strength. Skip feeding in fall and winter, when growth slows.",
         wrong="Feed houseplants mostly in winter, since that's when they grow fastest, and skip spring and summer.",
         unsafe="Feed them every time you water, all year round, at double the recommended strength."),
    dict(i=["Do my pots need drainage holes?", "Can I use a pot without drainage holes?"],
         p=["Will a layer of gravel fix a pot with no drainage hole?"],
         a="Use pots with drainage holes so extra water can escape. Gravel in the bottom doesn't fix a pot "
           "without holes; it actually keeps the soil wetter.",
         pa="No. Gravel doesn't replace a drainage hole; it keeps the soil wetter. Use a pot with holes, or set a "
            "draining pot inside the holeless one.",
         wrong="Yes, a layer of gravel gives the water somewhere to go, so drainage holes aren't needed.",
         unsafe="Drainage holes aren't needed; just water heavily and let the extra pool at the bottom of the pot."),
    dict(i=["How do I get rid of fungus gnats?"],
         p=["Tiny black flies keep hovering over my potting soil. What should I do?"],
         a="Let the top inch or two of soil dry between waterings, catch adults on yellow sticky traps, and water "
           "with a BTI product like mosquito bits to kill the larvae.",
         pa="Those are probably fungus gnats. Let the top inch or two of soil dry out, use yellow sticky traps, "
            "and water with a BTI product like mosquito bits.",
         wrong="Fungus gnats are caused by too much sunlight, so move the plant somewhere darker and they will leave.",
         unsafe="Soak the soil with household bleach or bug spray from the garage; that kills everything in the pot."),
    dict(i=["How can I tell if my plant has spider mites?", "How do I treat spider mites?"],
         p=["There's fine webbing under my plant's leaves. What is it?"],
         a="Look for fine webbing and tiny pale speckles, often under the leaves. Rinse the plant, wipe the leaves, "
           "raise humidity, and treat with insecticidal soap weekly.",
         pa="That's likely spider mites. Rinse the leaves in the shower, isolate the plant, raise humidity, and "
            "spray with insecticidal soap weekly until they're gone.",
         wrong="Fine webbing comes from overwatering, so let the soil dry out and the webs will disappear.",
         unsafe="Spray the whole plant with full-strength rubbing alcohol every day and leave it in hot sun to dry."),
    dict(i=["How do I get rid of mealybugs?"],
         p=["My plant has white, cottony bugs on the stems. How do I treat them?"],
         a="Dab them with a cotton swab dipped in rubbing alcohol, then treat with insecticidal soap or neem oil "
           "weekly until they're gone. Keep the plant isolated meanwhile.",
         pa="Those are likely mealybugs. Dab them with a cotton swab dipped in rubbing alcohol, isolate the plant, "
            "and spray with insecticidal soap weekly.",
         wrong="White cottony spots are just mineral deposits from tap water, so wipe them off once and you're done.",
         unsafe="Spray the plant and soil with a strong garden insecticide indoors, right next to your pets' bowls."),
    dict(i=["Should I water my plants on a fixed schedule?"], p=["Is it okay to water all my plants every Sunday?"],
         a="Check the soil instead of following a strict calendar. Push a finger into the soil and water only "
           "when it's as dry as that plant likes.",
         pa="Better to check each plant first. Push a finger into the soil and water only the ones that are as dry "
            "as they like; needs vary by plant and season.",
         wrong="Yes, every houseplant needs exactly the same amount of water each week, so a fixed schedule is ideal.",
         unsafe="Water every plant heavily every day, whether or not the soil is still wet, so none ever dry out."),
    dict(i=["Can I use tap water for my houseplants?"], p=["Is my tap water bad for my plants?"],
         a="Most houseplants are fine with room-temperature tap water. Calatheas, spider plants, and dracaenas can "
           "get brown tips from its minerals, so use filtered or rain water for them.",
         wrong="Tap water is fine for every plant; calatheas and dracaenas actually prefer hard, mineral-rich water.",
         unsafe="Use water from a water softener, or add a pinch of salt to it; plants love extra minerals."),
    dict(i=["Does misting help my plants?"], p=["Is misting enough to raise humidity?"],
         a="Misting raises humidity for only a few minutes. A humidifier, a pebble tray, or grouping plants "
           "together helps far more.",
         wrong="Yes, one misting a week keeps the humidity high for several days.",
         unsafe="Mist them with hot water several times a day and set them next to a heater to keep the air steamy."),
    dict(i=["How do I clean dusty leaves?"], p=["My plant's leaves are dusty. Should I clean them?"],
         a="Wipe the leaves gently with a soft, damp cloth every month or so, since dust blocks light. Skip "
           "leaf-shine sprays, which can clog the leaves.",
         pa="Yes, dust blocks light. Wipe each leaf gently with a soft, damp cloth, or rinse the plant in a "
            "lukewarm shower.",
         wrong="Dust actually protects leaves from sunburn, so it's best to leave it alone.",
         unsafe="Scrub the leaves with dish soap and a rough sponge, then coat them in cooking oil for shine."),
    dict(i=["What soil should I use for succulents?"], p=["Can I plant my aloe in regular potting soil?"],
         a="Use a fast-draining cactus and succulent mix, or add perlite or pumice to regular potting soil. Always "
           "use a pot with drainage holes.",
         pa="It's better to use a cactus mix, or to add plenty of perlite or pumice to regular potting soil so it "
            "drains fast.",
         wrong="Succulents do best in heavy, moisture-holding soil like pure peat moss, which keeps their roots damp.",
         unsafe="Plant them in dense garden clay in a pot without drainage holes, so the water can't escape."),
    dict(i=["Should I quarantine new plants?"],
         p=["I just bought a new plant. Can I put it right next to my others?"],
         a="Yes, keep new plants apart from the others for about two weeks, and check the leaves and stems for "
           "pests before grouping them.",
         pa="Wait about two weeks first. Keep it apart from your other plants and check the leaves and stems for "
            "pests before grouping them.",
         wrong="There's no need; pests can't move from one houseplant to another.",
         unsafe="Spray every new plant with a strong garden pesticide indoors right away, just to be safe."),
    dict(i=["Why is my plant leaning toward the window?"], p=["How do I stop my plant from growing lopsided?"],
         a="Plants grow toward their light source. Rotate the pot a quarter turn every week or so for even growth.",
         pa="Rotate the pot a quarter turn every week or so. Plants grow toward the light, so turning them keeps "
            "growth even.",
         wrong="Leaning means the plant is overwatered, so stop watering it for a month.",
         unsafe="Tie the stem tightly upright with wire and move the plant into a dark room so it stops reaching."),
    dict(i=["How should I care for houseplants in winter?"],
         p=["What changes should I make to plant care when it gets cold?"],
         a="Water less, stop fertilizing, and give plants your brightest spot. Keep them away from cold windows, "
           "drafts, and heaters.",
         wrong="Water more and fertilize every week in winter, since that's when houseplants grow fastest.",
         unsafe="Move them out onto the porch for a few frosty nights to toughen them up."),
    dict(i=["How do I know if my plant has root rot?"], p=["What does root rot look like, and can I save the plant?"],
         a="Rotten roots are brown, mushy, and smell bad, and the plant wilts even in wet soil. Trim the rot, repot "
           "into fresh mix in a draining pot, and water less.",
         wrong="Root rot is caused by underwatering, so water the plant more often and it will recover.",
         unsafe="Leave it in the soggy soil and add more water and fertilizer to help the roots fight it off."),
    dict(i=["What is Fern & Co.'s plant guarantee?", "Can I return a plant to Fern & Co.?"],
         p=["My new plant from Fern & Co. is dying after two weeks. Can I get a replacement?"],
         a="Fern & Co. offers a 30-day healthy plant guarantee. If a plant declines within 30 days, bring it back "
           "with your receipt for a replacement or store credit.",
         pa="Yes, that's within our 30-day healthy plant guarantee. Bring the plant and your receipt to the shop "
            "for a replacement or store credit.",
         wrong="Fern & Co. doesn't accept returns or replace plants for any reason.", unsafe=None),
    dict(i=["Does Fern & Co. repot plants?"], p=["Will the shop put my plant into the pot I buy there?"],
         a="Yes, Fern & Co. repots for free when you buy a pot from us. Bring your plant in and we'll supply the "
           "fresh soil.",
         wrong="No, Fern & Co. never repots plants, even when you buy a pot there.", unsafe=None),
    dict(i=["Can Fern & Co. look at my sick plant?"], p=["Where can I get help diagnosing a sick plant?"],
         a="Yes, bring it to our free plant clinic on Saturday mornings. Put it in a bag first so any pests don't "
           "spread in the shop.",
         pa="Bring it to the free plant clinic at Fern & Co. on Saturday mornings, bagged so pests can't spread, "
            "and our staff will take a look.",
         wrong="Fern & Co.'s plant clinic runs only on Monday nights and charges a fee for each plant.",
         unsafe="Spray it with every pesticide you have at home first, then bring it in unbagged."),
    dict(i=["Which plants at Fern & Co. are safe for pets?"], p=["I have two cats. What plants do you recommend?"],
         a="Our pet-safe shelf has ASPCA non-toxic plants, including spider plants, calatheas, Boston ferns, parlor "
           "palms, peperomias, and African violets.",
         pa="Try plants from our pet-safe shelf, such as a spider plant, calathea, Boston fern, parlor palm, or "
            "peperomia; the ASPCA lists them as non-toxic to cats.",
         wrong="Pothos, peace lilies, and aloe vera are the safest choices for homes with cats.",
         unsafe="Any plant is fine; just spray the leaves with tea tree oil so the cats leave them alone."),
    dict(i=["What is a node on a plant?"], p=["Why does my cutting need a node?"],
         a="A node is the small bump on a stem where a leaf joins. Roots and new growth come from nodes, so every "
           "stem cutting needs at least one.",
         pa="Roots and new shoots grow from nodes, the bumps where leaves join the stem. A cutting without a node "
            "may root but will never grow a new plant.",
         wrong="A node is the tip of a root, and cuttings root best when you cut them from below the soil.",
         unsafe="Nodes don't matter; just strip every leaf off the mother plant and stick them in water."),
    dict(i=["How can I tell overwatering from underwatering?"], p=["Is my plant getting too much water or too little?"],
         a="Overwatered plants have soft, yellow leaves and soggy soil. Underwatered plants have crispy, curled, or "
           "wrinkled leaves and bone-dry soil.",
         pa="Check the soil and leaves. Soggy soil with soft, yellow leaves means too much water; bone-dry soil "
            "with crispy or wrinkled leaves means too little.",
         wrong="Yellow, soft leaves and soggy soil are classic signs that a plant needs more water.",
         unsafe="When in doubt, water it heavily every day; you can never give a houseplant too much water."),
    dict(i=["What's a good plant for a beginner?"], p=["I kill every plant I buy. Which one should I try?"],
         a="A snake plant, ZZ plant, or pothos is a great first plant, since they tolerate low light and the "
           "occasional missed watering.",
         wrong="A fiddle-leaf fig or a calathea is the easiest plant for beginners, since they forgive anything.",
         unsafe="Any plant works if you water it every day; the more water, the easier it is to keep alive."),
    dict(i=["What does bright, indirect light mean?"], p=["What counts as indirect light?"],
         a="It's a bright spot where the sun's rays don't land directly on the leaves, such as near an east window "
           "or a few feet back from a south or west window.",
         wrong="Bright, indirect light means direct afternoon sun, pressed right against a south-facing window.",
         unsafe="It means as much direct sun as possible, so set your houseplants outside in midday summer sun."),
    dict(i=["How do I keep my plants alive while I'm on vacation?"],
         p=["I'm going away for two weeks. What do I do with my plants?"],
         a="Water thoroughly before you leave and move plants away from hot windows. For trips over two weeks, ask "
           "a friend to water or use self-watering spikes.",
         wrong="Houseplants can go two months without water in summer, so no preparation is needed.",
         unsafe="Leave every pot standing in a bucket of water for the whole trip so they can drink as needed."),
    dict(i=["What are the signs of too much fertilizer?"], p=["There's a white crust on my plant's soil. What is it?"],
         a="A white crust on the soil and brown, crispy leaf edges often mean fertilizer buildup. Flush the soil "
           "with plenty of water and feed less often.",
         pa="That's usually salt buildup from fertilizer or hard water. Flush the soil with plenty of water, let it "
            "drain, and feed less often.",
         wrong="A white crust on the soil is a harmless fungus that means the plant is healthy.",
         unsafe="Add more fertilizer at double strength to balance it out until the crust goes away."),
    dict(i=["Should I cut off yellow leaves?"], p=["Will a yellow leaf turn green again?"],
         a="Yes, a mostly yellow leaf won't turn green again, so snip it off at the base with clean scissors. Then "
           "look for the cause, often overwatering.",
         pa="No, once a leaf is mostly yellow it won't recover. Snip it off at the base with clean scissors and "
            "look for the cause.",
         wrong="Yellow leaves turn green again within a week if you fertilize them, so keep them.",
         unsafe="Strip off all the leaves, yellow and green, so the plant can start fresh."),
    dict(i=["How do I make a pebble tray?"], p=["What's a pebble tray for?"],
         a="Fill a shallow tray with pebbles and water, then set the pot on top so it sits above the water line. "
           "Evaporation adds a little humidity around the plant.",
         pa="It raises humidity around a plant. The pot sits on pebbles above a little water, and the evaporating "
            "water moistens the air.",
         wrong="A pebble tray holds the pot down in water so the roots can soak all the time.",
         unsafe="Fill the tray with water above the pebbles so the pot stands in water and soaks it up all day."),
    dict(i=["Do grow lights work for houseplants?"], p=["Can I use a lamp instead of a window for my plants?"],
         a="Yes, a full-spectrum LED grow light works well. Keep it about 6 to 12 inches above the plants and run "
           "it 12 to 14 hours a day.",
         pa="Yes, if it's a full-spectrum LED grow light. Place it 6 to 12 inches above the plants and run it 12 "
            "to 14 hours a day.",
         wrong="Grow lights only work for outdoor plants; houseplants can't use artificial light.",
         unsafe="Use an old halogen lamp pressed against the leaves and leave it on 24 hours a day."),
    dict(i=["How do I stop my cat from chewing my plants?"], p=["My cat keeps eating my plant's leaves. What should I do?"],
         a="Move toxic plants out of reach or rehome them, offer cat grass to chew instead, and keep only pet-safe "
           "plants on low shelves.",
         pa="Move the plant out of reach and offer cat grass instead. If the plant is toxic or your cat seems "
            "unwell, call your vet.",
         wrong="Cats only chew plants that are non-toxic, so you don't need to worry about it.",
         unsafe="Spray the leaves with tea tree oil or citrus essential oil; the smell keeps cats away."),
    dict(i=["When is Fern & Co. open?"], p=["Is Fern & Co. open on Mondays?"],
         a="Fern & Co. is open Tuesday to Sunday, 10 a.m. to 6 p.m., and closed on Mondays.",
         pa="No, Fern & Co. is closed on Mondays. We're open Tuesday to Sunday, 10 a.m. to 6 p.m.",
         wrong="Yes, Fern & Co. is open every day, including Mondays, from 7 a.m. to midnight.", unsafe=None),
    dict(i=["Should I use cold water on my plants?"], p=["What temperature should watering water be?"],
         a="Use room-temperature water. Cold water can shock roots and leave spots on fuzzy leaves like African "
           "violets.",
         pa="Room temperature is best. Cold water can shock roots and spot the leaves of plants like African "
            "violets.",
         wrong="Ice-cold water is best, because it slows down root rot.",
         unsafe="Use water straight from the kettle so it warms the roots."),
    dict(i=["What is bottom watering?"], p=["How do I water a plant from the bottom?"],
         a="Set the pot in a tray of water for 15 to 30 minutes so the soil soaks it up through the drainage holes, "
           "then let it drain.",
         wrong="Bottom watering means pouring water only onto the lowest leaves.",
         unsafe="Leave the pot standing in a tray of water for days so it can drink whenever it wants."),
    dict(i=["Which window is best for houseplants?"], p=["What kind of plant suits a north-facing window?"],
         a="East windows give gentle morning sun that most plants love. South and west windows suit succulents, and "
           "north windows suit low-light plants.",
         pa="A north window gives soft, low light, so choose a low-light plant like a snake plant, ZZ plant, cast "
            "iron plant, or parlor palm.",
         wrong="A north-facing window gets the strongest sun, so it's perfect for aloe and jade plants.", unsafe=None),
]


def names(ps) -> str:
    ns = ["the " + p["name"] for p in ps]
    return ns[0] if len(ns) == 1 else ", ".join(ns[:-1]) + " and " + ns[-1]


def list_input(ps) -> str:
    return ", ".join(p["name"] for p in ps)


def pick(rng, ps, pred, n):
    pool = [p for p in ps if pred(p)]
    return rng.sample(pool, n)


def choice_tasks(rng: random.Random):
    """Questions with an input (a list of plants, or a described problem): (task, instruction, input, answer,
    wrong, unsafe) generators; task names which of the two phrasings lists it came from."""
    def safe_cats():
        s = pick(rng, PLANTS, lambda p: not p["toxic"], 1)
        t = pick(rng, PLANTS, lambda p: p["toxic"], 2)
        ps = rng.sample(s + t, 3)
        return (list_input(ps), f"Only {names(s)} is safe for cats and dogs; {names(t)} are toxic.",
                f"The {s[0]['name']} is the non-toxic one; {names(t)} are both toxic to cats.",
                f"Only {names(t[:1])} is safe for cats and dogs; {names(s + t[1:])} are toxic.",
                "All three are safe, so your cat can nibble on any of them.")

    def dim():
        y = pick(rng, PLANTS, lambda p: p["low"] == "yes", 1)
        n = pick(rng, PLANTS, lambda p: p["low"] == "no", 2)
        ps = rng.sample(y + n, 3)
        return (list_input(ps), f"{cap(names(y))} is the best choice for a dim room; {names(n)} need much more light.",
                f"Pick {names(y)}; it tolerates low light, while {names(n)} need bright light.",
                f"{cap(names(n[:1]))} is the best choice for a dim room; {names(y + n[1:])} need much more light.",
                "Any of them; if one struggles, move it straight into full, hot afternoon sun outdoors.")

    def humid():
        h = pick(rng, PLANTS, lambda p: p["humidity"] == "high", 1)
        lo = pick(rng, PLANTS, lambda p: p["humidity"] == "low", 2)
        ps = rng.sample(h + lo, 3)
        return (list_input(ps), f"{cap(names(h))} needs the most humidity; {names(lo)} are happy in dry air.",
                f"{cap(names(h))} would benefit most; {names(lo)} prefer dry air.",
                f"{cap(names(lo[:1]))} needs the most humidity; {names(h + lo[1:])} are happy in dry air.",
                f"{cap(names(h))}; to raise its humidity, set it right on top of a radiator.")

    def sort_pets():
        s = pick(rng, PLANTS, lambda p: not p["toxic"], 2)
        t = pick(rng, PLANTS, lambda p: p["toxic"], 2)
        ps = rng.sample(s + t, 4)
        return (list_input(ps), f"Pet-safe: {names(s)}. Toxic: {names(t)}.",
                f"{cap(names(s))} are safe for dogs; {names(t)} are toxic.",
                f"{cap(names(t))} are safe for dogs; {names(s)} are toxic.",
                "All four are fine for dogs to chew on.")

    def dry():
        d = pick(rng, PLANTS, lambda p: "completely" in p["water_when"], 1)
        m = pick(rng, PLANTS, lambda p: "completely" not in p["water_when"] and p["kind"] != "orchid", 2)
        ps = rng.sample(d + m, 3)
        return (list_input(ps), f"{cap(names(d))} should dry out completely; water {names(m)} when just the top of "
                                "the soil is dry.",
                f"{cap(names(d))} wants to dry out fully; {names(m)} like to be watered sooner.",
                f"{cap(names(m[:1]))} should dry out completely; water {names(d + m[1:])} when just the top of the "
                "soil is dry.",
                "Let all of them sit in soggy soil; none of them should ever dry out.")

    problems = [(p, pr) for p in PLANTS for pr in p["problems"]]
    rng.shuffle(problems)

    def diagnose():
        p, (sym, cause, fix) = problems.pop()
        c = ctx(p)
        others = [pr for q in PLANTS for pr in q["problems"] if ("overwater" in pr[1]) != ("overwater" in cause)]
        _, wc, wfix = rng.choice(others)
        return (f"My {p['name']} has {sym}.", fit(f"That is most likely {cause}. {fix}"),
                fit(f"This is usually caused by {cause}. {fix}"), fit(f"That is most likely {wc}. {wfix}"),
                unsafe("problem", c, rng))

    return {
        "safe_cats": (safe_cats, ["Which of these plants is safe for cats?", "Which plant on this list is pet-safe?"],
                      ["Which one of these is non-toxic to cats?"], 8, 6),
        "dim": (dim, ["Which of these plants would do best in a dim room?"],
                ["I have a room with very little light. Which of these will cope best?"], 6, 5),
        "humid": (humid, ["Which of these plants needs the most humidity?"],
                  ["Which of these plants would benefit most from a humidifier?"], 5, 4),
        "sort_pets": (sort_pets, ["Sort these plants into pet-safe and toxic."],
                      ["Which of these are okay around my dog?"], 5, 4),
        "dry": (dry, ["Which of these plants should dry out completely between waterings?"],
                ["Which of these should I let dry out fully before watering?"], 5, 3),
        "diagnose": (diagnose, ["What's the most likely cause of this problem?"],
                     ["Diagnose this houseplant problem."], 8, 6),
    }


# --------------------------------------------------------------------------------------------
# Builders
# --------------------------------------------------------------------------------------------
def build_instructions(rng: random.Random) -> list[dict]:
    rows, seen = [], set()

    def add(instruction, inp, output):
        assert words(output) <= MAX_WORDS, output
        if (instruction, inp) not in seen:
            seen.add((instruction, inp))
            rows.append({"instruction": instruction, "input": inp, "output": output})

    for p in PLANTS:
        c = ctx(p)
        for kind in ("water", "light", "lowlight", "cat", "dog", "humidity", "temp", "propagate", "size", "summary"):
            q = rng.choice(QI[kind]).format(**c)
            add(q, "", answers(kind, c)[0])
        for pr in p["problems"]:
            q = rng.choice(QI["problem"]).format(symptom=pr[0], **c)
            add(q, "", answers("problem", c, pr)[0])
    for g in GENERAL:
        for q in g["i"]:
            add(q, "", g["a"])
    for _task, (gen, qi, _qp, n_i, _n_p) in choice_tasks(rng).items():
        for k in range(n_i):
            for _try in range(20):
                inp, out, *_ = gen()
                if (qi[k % len(qi)], inp) not in seen:
                    break
            add(qi[k % len(qi)], inp, out)
    rng.shuffle(rows)
    return rows


def build_pairs(rng: random.Random) -> list[dict]:
    slots = []  # (prompt, chosen, {how: rejected-maker})

    for p in PLANTS:
        c = ctx(p)
        for kind in ("water", "light", "lowlight", "pets", "humidity", "temp", "propagate", "size", "summary"):
            qi = rng.randrange(len(QP[kind]))
            q = QP[kind][qi].format(**c)
            kk = kind
            if kind == "pets":  # answer about the animal the prompt names
                kk = ("cat", "pets", "dog")[qi]
            ch = rng.choice(answers(kk, c))
            makers = dict(
                wrong_fact=lambda kk=kk, c=c: (answers(kk, dict(c, toxic=not c["toxic"], toxin="",
                                                               symptoms=MOUTH, toxic_note=""))[0]
                                               if kk in ("cat", "dog", "pets") else wrong_fact(kk, c, rng)),
                unsafe=lambda kind=kind, c=c: unsafe(kind, c, rng),
                vague=lambda c=c: rng.choice(VAGUE).format(**c))
            if kind == "humidity" and c["humidity"] == "average":
                del makers["wrong_fact"]
            slots.append((q, ch, makers))
        for pr in p["problems"]:
            q = rng.choice(QP["problem"]).format(symptom=pr[0], **c)
            ch = rng.choice(answers("problem", c, pr))
            slots.append((q, ch, dict(wrong_fact=lambda c=c, pr=pr: wrong_fact("problem", c, rng, pr),
                                      unsafe=lambda c=c: unsafe("problem", c, rng),
                                      vague=lambda c=c: rng.choice(VAGUE).format(**c))))
    for g in GENERAL:
        for q in g["p"]:
            makers = dict(wrong_fact=lambda g=g: g["wrong"], vague=lambda: rng.choice(VAGUE).format(name="plant"))
            if g["unsafe"]:
                makers["unsafe"] = lambda g=g: g["unsafe"]
            slots.append((q, g.get("pa", g["a"]), makers))
    for _task, (gen, _qi, qp, _n_i, n_p) in choice_tasks(random.Random(1)).items():
        for _k in range(n_p):
            inp, _out, ch, wrong, bad = gen()
            slots.append((f"{qp[0]}\n{inp}", ch, dict(wrong_fact=lambda w=wrong: w, unsafe=lambda b=bad: b,
                                                      vague=lambda: rng.choice(VAGUE).format(name="plant"))))

    rng.shuffle(slots)
    counts = {"wrong_fact": 0, "vague": 0, "rambling": 0, "unsafe": 0}
    rows, seen = [], set()
    for prompt, chosen, makers in slots:
        if prompt in seen:
            continue
        seen.add(prompt)
        assert words(chosen) <= MAX_WORDS, chosen
        how = min((k for k in counts if k in makers or k == "rambling"), key=lambda k: (counts[k], rng.random()))
        rejected = rambling(chosen, rng) if how == "rambling" else makers[how]()
        assert rejected.strip() != chosen.strip(), (prompt, chosen)
        counts[how] += 1
        rows.append({"prompt": prompt, "chosen": chosen, "rejected": rejected, "how": how})
    return rows


# --------------------------------------------------------------------------------------------
# Corpus: prose documents (care guides, shop notes, customer stories), one per line
# --------------------------------------------------------------------------------------------
CUSTOMERS = ["Maya", "Tomás", "Priya", "Jonah", "Aiko", "Grace", "Samir", "Lena", "Oliver", "Nadia", "Ruth",
             "Diego", "Hannah", "Kwame", "Ingrid", "Marcus", "Yusuf", "Clara", "Ben", "Sofia", "Wen", "Amara",
             "Felix", "Rosa", "Theo", "June", "Omar", "Elsie"]
ROOMS = {"yes": ["a north-facing bedroom", "a dim hallway", "an office with one small window",
                 "a living room corner far from the window"],
         "partial": ["a bright living room, a few feet back from the window", "a kitchen with an east window",
                     "a bedroom with filtered light through sheer curtains"],
         "no": ["a bright spot near an east-facing window", "a sunroom", "the brightest windowsill in the flat"]}


def corpus_for_plant(p: dict, rng: random.Random) -> list[str]:
    c = ctx(p)
    name, who = c["name"], lambda: rng.choice(CUSTOMERS)
    docs = []
    docs.append(rng.choice([
        "The {name} ({latin}) is native to {origin}. {tip}",
        "{A} ({latin}) comes originally from {origin}, and it is one of the plants we sell most often at Fern & Co. "
        "{tip}"]).format(**c))
    docs.append(rng.choice([
        "Light is the first thing to get right with {a}: it does best in {light}. {lowsent}",
        "When customers ask where to put {a}, we point them toward {light}. {lowsent}"]).format(lowsent=low_sentence(c), **c))
    docs.append(rng.choice([
        "Our watering rule for {plural} is to wait until {water_when}, then soak the pot and let it drain. In most "
        "homes that works out to {freq}.",
        "Most {plural} that come back to the shop sick were watered on a schedule instead of by touch. Check with "
        "a finger and water only when {water_when}; in a typical home that is {freq}."]).format(**c))
    docs.append(rng.choice([
        "{A} is comfortable between {lo} and {hi} degrees Fahrenheit, roughly {lc} to {hc} Celsius. As for "
        "humidity, the need is {level}. {hum_note} {temp_tip}",
        "Climate notes for the {name}: aim for {lo} to {hi}°F during the day and night. Humidity needs are {level}. "
        "{hum_note}"]).format(level=LEVEL_PHRASE[c["humidity"]], **c).strip())
    if c["toxic"]:
        cause = f"Its {c['toxin']}" if c["toxin"] else "Eating it"
        docs.append(rng.choice([
            f"Pet owners, take note: {c['a']} is toxic to cats and dogs. {cause} can cause {c['symptoms']}, so we "
            "suggest a high shelf or a hanging planter in homes with pets. " + c["toxic_note"],
            f"We label every {name} in the shop with a small paw-print warning, because the plant is toxic to cats "
            f"and dogs. If a pet chews one, watch for {c['symptoms']}, and call your vet."]).strip())
    else:
        docs.append(rng.choice([
            f"{c['A']} is listed as non-toxic to cats and dogs by the ASPCA, which is why you'll find it on the "
            "pet-safe shelf at Fern & Co.",
            f"Good news for cat owners: the {name} is on the ASPCA's list of plants that are non-toxic to cats and "
            "dogs. A pet that chews a lot of any plant may still get a mild upset stomach, though."]))
    docs.append(rng.choice([
        "Propagating {a} makes a good weekend project: {propagate}. {prop_tip}",
        "At our spring propagation workshop, we show people how to make more {plural}. The method is simple: "
        "{propagate}. {prop_tip}"]).format(**c))
    for sym, cause, fix in p["problems"]:
        docs.append(rng.choice([
            f"{who()} brought {c['a']} into the shop with {sym}. The cause turned out to be {cause}. {fix} A few "
            "weeks later it was putting out healthy new growth.",
            f"A regular customer, {who()}, emailed us a photo of {c['a']} with {sym}. We recognized the usual "
            f"culprit, {cause}, and suggested a fix: {fix[0].lower() + fix[1:]}",
            f"Shop staff see {sym} on {c['plural']} almost every week. Nine times out of ten it comes down to "
            f"{cause}. {fix}"]))
    docs.append(rng.choice([
        "Shop note: our {plural} arrive as small starter plants, but with good care one eventually {size}. Growth "
        "is {rate}.",
        "How big does it get? Indoors, {a} {size} with time, and its growth is {rate}, so plan its spot "
        "accordingly."]).format(**c))
    docs.append({
        "yes": "Staff pick for dim apartments: {a}. It tolerates low light and simply {low_effect} there.",
        "partial": "{A} can live in a medium-light room, but in a truly dim spot it {low_effect}.",
        "no": "We don't recommend {a} for a dark hallway or a north-facing room; without enough light it "
              "{low_effect}."}[c["low"]].format(**c))
    docs.append("Fern & Co. care card, {name}: light, {light}; water when {water_when}; humidity, {hum}; "
                "temperature, {lo} to {hi}°F; pets, {pets}.".format(
                    hum=c["humidity"], pets="toxic" if c["toxic"] else "non-toxic", **c))
    docs.append("{who} has kept the same {name} going for {n} years in {room}. The secret, {who} told us, is to "
                "water only when {water_when} and to resist fussing over it.".format(
                    who=who(), n=rng.randint(3, 12), room=rng.choice(ROOMS[c["low"]]), **c))
    docs.append(rng.choice([
        "In winter, {a} grows more slowly and needs less water, so stretch the time between waterings and skip "
        "fertilizer until spring.",
        "When the days get shorter, move {a} a little closer to the window if it can take it, and water less "
        "often than in summer."]).format(**c))
    docs.append(rng.choice([
        "Repotting {a}: wait for spring, move up only one pot size, and use {mix}. A pot with drainage holes is "
        "a must.",
        "When roots start poking out of the bottom, it's time to repot your {name}. Go up one size, in spring, "
        "using {mix}."]).format(mix=MIX[c["kind"]], **c))
    return docs


GENERAL_DOCS = [
    "Fern & Co. is a small plant shop with a big back room of tropical foliage, a pet-safe shelf by the door, "
    "and a propagation station where customers can swap cuttings.",
    "Shop policy: every plant from Fern & Co. comes with a 30-day healthy plant guarantee. If it declines within "
    "30 days, bring it back with the receipt for a replacement or store credit.",
    "We repot for free when you buy a pot from us. Bring the plant in, choose a pot, and we'll supply fresh soil "
    "suited to that plant.",
    "Our free plant clinic runs on Saturday mornings. Please bring sick plants in a bag so pests don't spread to "
    "the shop's stock.",
    "Fern & Co. is open Tuesday to Sunday from 10 a.m. to 6 p.m. and closed on Mondays, when we take deliveries "
    "and water the greenhouse.",
    "The most common way houseplants die is overwatering. Roots need air as well as water, and soil that stays "
    "soggy suffocates them until they rot.",
    "A finger test beats any watering calendar. Push a finger into the soil up to the second knuckle; if it "
    "feels dry at the depth your plant likes, it's time to water.",
    "Always water thoroughly, until water runs out of the drainage holes, and then empty the saucer after "
    "fifteen minutes so the roots never sit in water.",
    "Drainage holes matter more than any potting trick. A layer of gravel at the bottom of a closed pot does "
    "not improve drainage; it just raises the soggy zone closer to the roots.",
    "Most houseplants only need feeding in spring and summer. We suggest a balanced liquid fertilizer at half "
    "strength about once a month, and none in fall and winter.",
    "A white crust on top of the soil is usually salt buildup from fertilizer or hard water. Flushing the pot "
    "with plenty of water every few months washes it out.",
    "Spring is the best season for repotting. Move up only one or two inches in pot width, because a huge pot "
    "holds extra wet soil that the roots cannot use.",
    "Fungus gnats are tiny black flies that breed in damp potting soil. Letting the top inch or two dry out, "
    "hanging yellow sticky traps, and watering with a BTI product usually ends the problem.",
    "Spider mites are tiny and easy to miss until you see fine webbing and pale speckles on the leaves. They "
    "love warm, dry air, so they flare up in winter when the heating is on.",
    "To treat spider mites, rinse the plant in the shower, wipe both sides of every leaf, raise the humidity, "
    "and spray with insecticidal soap once a week for a month.",
    "Mealybugs look like bits of white cotton in leaf joints. A cotton swab dipped in rubbing alcohol removes "
    "them, and weekly insecticidal soap keeps new ones from hatching.",
    "Scale insects appear as small brown bumps on stems and leaf undersides. Scrape them off gently and treat "
    "the plant with horticultural oil.",
    "New plants should spend about two weeks in quarantine, away from the rest of your collection, so any "
    "hitchhiking pests show themselves before they spread.",
    "Misting feels helpful, but it raises humidity for only a few minutes. A humidifier, a pebble tray, or a "
    "tight group of plants does far more for humidity-loving species.",
    "A pebble tray is simple: fill a shallow tray with pebbles, add water to just below the top of the stones, "
    "and set the pot on it so it never stands in water.",
    "Bright, indirect light means a bright spot where the sun's rays don't land directly on the leaves. Near an "
    "east window or a few feet back from a south or west window usually fits.",
    "Window direction matters. East windows give gentle morning sun, south and west windows are bright and hot, "
    "and north windows give soft light that suits low-light plants.",
    "Plants lean toward their light source. Giving each pot a quarter turn every week or so keeps the growth "
    "even and the stems straight.",
    "Dust on leaves blocks light. A soft, damp cloth once a month, or a lukewarm shower for smaller plants, "
    "keeps leaves clean without the need for leaf-shine products.",
    "Room-temperature water is kindest to roots. Very cold water can shock tropical plants and leaves pale "
    "spots if it splashes onto fuzzy leaves.",
    "Bottom watering works well for plants that hate wet leaves. Stand the pot in a tray of water for 15 to 30 "
    "minutes, then lift it out and let it drain.",
    "Overwatered plants usually have soft, yellowing leaves and soil that stays wet for days. Underwatered "
    "plants have crispy, curled, or wrinkled leaves and soil that pulls away from the pot.",
    "Root rot shows as brown, mushy, bad-smelling roots. Healthy roots are firm and white or tan. Trim the rot "
    "away with clean scissors and repot into fresh, dry mix.",
    "A yellow leaf will not turn green again. Snip it off at the base, then look for the cause, which is most "
    "often too much water or too little light.",
    "Before a holiday, water everything thoroughly and pull plants back from hot windows. For trips longer "
    "than two weeks, a friend with a watering can is still the best plan.",
    "A full-spectrum LED grow light can stand in for a window. Hang it 6 to 12 inches above the leaves and run "
    "it 12 to 14 hours a day on a timer.",
    "In winter most houseplants rest. Water less, stop fertilizing, and keep them away from cold glass, drafts, "
    "and radiators.",
    "Every stem cutting needs at least one node, the small bump where a leaf meets the stem. Roots and new "
    "shoots grow from nodes, not from the leaf itself.",
    "Water propagation lets you watch roots form. Change the water every few days and move the cutting to soil "
    "once the roots are a few inches long.",
    "Cats and houseplants can live together. Keep toxic plants on high shelves or in hanging planters, offer a "
    "pot of cat grass, and fill low spots with pet-safe plants.",
    "Never use essential oils such as tea tree oil to keep cats off plants; many oils are toxic to cats. Moving "
    "the plant out of reach is the safer fix.",
    "If a pet chews a toxic plant, note which plant it was and call your vet or a pet poison helpline, even if "
    "the symptoms seem mild.",
    "Succulents and cacti want a fast-draining mix. Regular potting soil can be improved with plenty of perlite "
    "or pumice, and the pot must have drainage holes.",
    "Terracotta pots breathe and dry out quickly, which suits succulents. Glazed and plastic pots hold moisture "
    "longer, which suits ferns and calatheas.",
    "Our beginner bundle pairs a snake plant, a ZZ plant, and a pothos, three plants that forgive low light and "
    "the occasional missed watering.",
    "The pet-safe shelf at Fern & Co. holds spider plants, calatheas, Boston ferns, parlor palms, peperomias, "
    "African violets, and orchids, all listed as non-toxic by the ASPCA.",
    "This month's workshop covers repotting. Bring a root-bound plant and we'll show you how to loosen the "
    "roots and choose the right pot size.",
    "Every autumn we remind customers to bring plants in from the balcony before night temperatures fall below "
    "about 50°F, and to check them for pests first.",
    "Humidity in heated homes can drop below 30% in winter. Ferns, calatheas, and orchids feel it first, with "
    "brown tips and crispy edges.",
    "A plant that drops a few leaves after coming home from the shop is usually just adjusting to new light. "
    "Give it a few weeks before changing its care.",
    "Yellow sticky traps do more than catch fungus gnats; they also show you early on whether pests are in the "
    "room at all.",
    "Fertilizer is food for growth, not medicine. Feeding a sick or dry plant can burn its roots, so fix the "
    "watering and light first.",
    "We keep a logbook at the counter where customers can note which plants they are swapping. Last week it "
    "filled with pothos and pilea pups.",
]


def comparisons(rng: random.Random) -> list[str]:
    docs = []
    toxic = [p for p in PLANTS if p["toxic"]]
    safe = [p for p in PLANTS if not p["toxic"]]
    for p in toxic:
        same = [q for q in safe if q["low"] == p["low"]] or safe
        q = rng.choice(same)
        docs.append(f"If you love the look of {art(p['name'])} but share your home with a cat, consider "
                    f"{art(q['name'])} instead: it is non-toxic and also grows well in {q['light']}.")
    for _ in range(12):
        p, q = rng.sample(PLANTS, 2)
        while ("completely" in p["water_when"]) == ("completely" in q["water_when"]):
            p, q = rng.sample(PLANTS, 2)
        docs.append(f"Side by side in the shop, {art(p['name'])} and {art(q['name'])} have different needs. "
                    f"Water the {p['name']} when {p['water_when']}, but water the {q['name']} when {q['water_when']}.")
    return docs


def build_corpus(rng: random.Random) -> list[str]:
    docs = [d for p in PLANTS for d in corpus_for_plant(p, rng)] + GENERAL_DOCS + comparisons(rng)
    docs = list(dict.fromkeys(" ".join(d.split()) for d in docs))
    rng.shuffle(docs)
    return docs


def main() -> None:
    rng = random.Random(0)
    corpus = build_corpus(rng)
    instructions = build_instructions(rng)
    pairs = build_pairs(rng)
    (HERE / "corpus.txt").write_text("\n".join(corpus) + "\n", encoding="utf-8")
    for name, rows in (("instructions.jsonl", instructions), ("pairs.jsonl", pairs)):
        with open(HERE / name, "w", encoding="utf-8") as f:
            for row in rows:
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
    hows = {}
    for r in pairs:
        hows[r["how"]] = hows.get(r["how"], 0) + 1
    print(f"corpus.txt: {len(corpus)} documents; instructions.jsonl: {len(instructions)} records; "
          f"pairs.jsonl: {len(pairs)} pairs {dict(sorted(hows.items()))}")


if __name__ == "__main__":
    main()
