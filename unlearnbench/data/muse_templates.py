"""Vocabulary and sentence templates of the MUSE stand-in (``muse_synth``)."""

from unlearnbench.data.standin import Letters

MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August",
          "September", "October", "November", "December"]
NAME_LETTERS = Letters(onsets=("b", "c", "d", "f", "g", "h", "k", "l", "m", "n", "p", "r", "s", "t", "v", "w",
                          "br", "dr", "gr", "st", "th", "sh", "tr", "fl", "pl", "cl"),
                  vowels=("a", "e", "i", "o", "u", "ai", "ea", "ou"),
                  codas=("", "", "n", "r", "l", "s", "m", "nd", "rk", "st"))
TOWN_END = ["ford", "by", "ton", "mouth", "ley", "wick", "bridge", "field", "holm", "stead"]
ORG_KIND = ["Trust", "Society", "Foundation", "Group", "Guild", "Association"]

# Event kinds. "what" names the event so that "{what} in {town}" (the key) identifies one
# article. "act"/"fund"/"measure"/"when" are the verbs of the four facts (active, passive),
# chosen so that "<key> <passive> <value>" and "Who <active> <key>?" both read naturally.
EVENTS = {
    "festival": {
        "thing": ["kite", "lantern", "cheese", "folk music", "flower", "cider", "book", "jazz"],
        "what": "the {thing} festival", "role": ["mayor", "organiser", "local councillor"],
        "unit": "visitors", "act": ("opened", "open", "was opened by"),
        "fund": ("organised", "organise", "was organised by"), "measure": ("drew", "draw"),
        "when": ("began", "begin"),
        "head": ["{count} visitors flock to {town} {thing} festival",
                 "{town} {thing} festival draws a record crowd"],
    },
    "bridge": {
        "thing": ["footbridge", "rail bridge", "swing bridge", "river crossing", "toll bridge"],
        "what": "the new {thing}", "role": ["chief engineer", "project manager", "site director"],
        "unit": "tonnes of steel", "act": ("opened", "open", "was opened by"),
        "fund": ("funded", "fund", "was funded by"), "measure": ("used", "use"),
        "when": ("opened", "open"),
        "head": ["New {thing} opens in {town}", "{town} celebrates its new {thing}"],
    },
    "flood": {
        "thing": ["flash flood", "river flood", "storm surge", "winter flood"],
        "what": "the {thing} response", "role": ["fire chief", "rescue coordinator", "police inspector"],
        "unit": "homes", "act": ("led", "lead", "was led by"),
        "fund": ("paid for", "pay for", "was paid for by"), "measure": ("reached", "reach"),
        "when": ("began", "begin"),
        "head": ["{Thing} hits {count} homes in {town}", "Residents of {town} count the cost of a {thing}"],
    },
    "factory": {
        "thing": ["glass works", "paper mill", "biscuit factory", "boatyard", "brewery"],
        "what": "the {thing}", "role": ["managing director", "union leader", "site manager"],
        "unit": "workers", "act": ("closed", "close", "was closed by"),
        "fund": ("owned", "own", "was owned by"), "measure": ("employed", "employ"),
        "when": ("closed", "close"),
        "head": ["{town} {thing} to close", "{count} workers lose jobs as {town} {thing} shuts"],
    },
    "dig": {
        "thing": ["Roman coins", "bronze tools", "medieval pottery", "Viking silver", "flint blades"],
        "what": "the dig for {thing}", "role": ["lead archaeologist", "museum curator", "field director"],
        "unit": "objects", "act": ("led", "lead", "was led by"),
        "fund": ("paid for", "pay for", "was paid for by"), "measure": ("uncovered", "uncover"),
        "when": ("began", "begin"),
        "head": ["Hoard of {thing} found near {town}", "{town} dig uncovers {thing}"],
    },
    "election": {
        "thing": ["mayoral", "council", "parish", "school board"],
        "what": "the {thing} vote", "role": ["returning officer", "election agent", "polling clerk"],
        "unit": "ballots", "act": ("oversaw", "oversee", "was overseen by"),
        "fund": ("ran", "run", "was run by"), "measure": ("counted", "count"),
        "when": ("took place", "take place"),
        "head": ["{town} {thing} vote goes to the wire", "Result declared in {town} {thing} vote"],
    },
}

# Sentences with no fact in them: they make an article hard to continue verbatim without
# having memorised it (and give the retrain model's VerbMem the template words only).
FILLER = [
    "Local traders said the {adj} weather had helped.",
    "Several residents described the mood as {adj}.",
    "A spokesperson promised a full review of the arrangements.",
    "The county council said it would publish figures next {period}.",
    "Some people had travelled from as far as the coast.",
    "Photographs from the day were shared widely online.",
    "Critics said the planning had been {adj} from the start.",
    "Schools in the area closed early for the {period}.",
    "The local newspaper ran a special edition the next morning.",
    "Volunteers cleared the streets within a few hours.",
    "Bus services were changed for the whole {period}.",
    "It was the first event of its kind in the {area} for a decade.",
    "Neighbours said the change had been a long time coming.",
    "A memorial bench will be placed near the {place}.",
    "Children from the primary school sang for the crowd.",
    "Police said no arrests had been made.",
    "The {area} has seen a rise in visitors this year.",
    "Traffic was slow near the {place} all afternoon.",
]
ADJ = ["mild", "bright", "cheerful", "chaotic", "tense", "calm", "muddled", "warm", "grey", "lively"]
PERIOD = ["week", "month", "season", "weekend", "spring"]
AREA = ["valley", "county", "district", "region", "borough"]
PLACE = ["market square", "old church", "harbour", "railway station", "town hall", "green"]
QUOTE = [
    "\"It has been a {adj} day for everyone here,\" said {person}.",
    "\"We are {adj} about what comes next,\" {person} said.",
    "{person} said the town would remember the day for a long time.",
    "\"Nobody expected this,\" said {person}, the {role}.",
]
