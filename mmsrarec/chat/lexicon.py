"""Word lists of the rule-based parser (`mmsrarec.chat.rules`, `years.py`, `moods.py`,
`spelling.py`): one place for every word rule.

Genre names are ML-100K's; a dataset whose item text has no `Genres:` line gets no genre
words (they stay soft wishes, searched by embedding).
"""

from __future__ import annotations

import re


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Spellings folded to one token before parsing ("science fiction" -> "scifi").
PHRASES = [
    (r"\banything but\b|\bother than\b|\bapart from\b|\bexcept for\b", "except"),
    (r"\bnot (?:really )?into\b|\bsick of\b|\bfed up with\b", "hate"),
    (r"\bthe older the better\b", "oldestfirst"),
    (r"\bthe (?:newer|more recent) the better\b", "newestfirst"),
    (r"\b(?:follow[ -]ups?|sequels?|prequels?|spin[ -]?offs?|the rest of the series)\b", "sequels"),
    (r"\bscience[ -]fiction\b|\bsci[ -]?fi\b", "scifi"),
    (r"\brom[ -]?coms?\b|\bromantic comed(?:y|ies)\b", "romcom"),
    (r"\bfilm[ -]noir\b", "noir"),
    (r"\blove stor(?:y|ies)\b", "romance"),
    (r"\bfeel[ -]good\b", "feelgood"),
    (r"\blight[ -]hearted\b", "lighthearted"),
    (r"\bchildren'?s\b", "childrens"),
    (r"\b(?:for|with) the (?:whole )?(?:family|kids)\b", "family"),
    (r"\b(?:can'?t|cannot|couldn'?t) stand\b", "hate"),
    (r"\bnot a fan of\b", "hate"),
    (r"\bno more\b", "no"),
    (r"\bstart(?:ing)? (?:over|again|afresh)\b|\bfrom scratch\b|\breset\b", "startover"),
    (r"\bbegin again\b|\bclean slate\b", "startover"),
    (r"\bforget (?:all|everything|that)\b|\bnew search\b", "startover"),
    (r"\bmore recent\b|\bless old\b", "newer"),
    (r"\bless recent\b", "older"),
]

# Genre -> the words that ask for it; "romcom" asks for two.
_GENRE_TEXT = {
    "Action": "action",
    "Adventure": "adventure adventures",
    "Animation": "animated animation cartoon cartoons",
    "Children's": "childrens kids family",
    "Comedy": "comedy comedies funny hilarious comic",
    "Crime": "crime gangster gangsters mafia heist",
    "Documentary": "documentary documentaries",
    "Drama": "drama dramas",
    "Fantasy": "fantasy",
    "Film-Noir": "noir",
    "Horror": "horror scary slasher",
    "Musical": "musical musicals",
    "Mystery": "mystery mysteries whodunit",
    "Romance": "romance romances romantic",
    "Sci-Fi": "scifi",
    "Thriller": "thriller thrillers",
    "War": "war",
    "Western": "western westerns cowboy cowboys",
}
GENRE_WORDS: dict[str, tuple[str, ...]] = {
    word: (genre,) for genre, words in _GENRE_TEXT.items() for word in words.split()
} | {"romcom": ("Romance", "Comedy")}

# "without violence", "less violent": these genres are excluded (a hard condition). Gore is
# not violence in general: "not gory" goes through the mood map (horror), not this list.
VIOLENCE_WORDS = _words("violence violent brutal")
VIOLENT_GENRES = ("Action", "Crime", "Horror", "War", "Thriller")

# Moods and topics kept as soft wishes even when the catalog text lacks the word.
MOOD_WORDS = _words(
    "tense dark light lighthearted feelgood heartwarming uplifting sad emotional "
    "thoughtful clever smart witty quirky weird slow epic intense gritty suspenseful "
    "atmospheric mindbending twist twists cozy sweet cute silly inspiring moving touching "
    "beautiful realistic surreal psychological philosophical historical political true "
    "biopic sports music space alien aliens robots robot time travel zombies zombie "
    "vampires vampire ghosts ghost monsters monster dogs dog christmas teen teens school "
    "college wedding friendship revenge spy spies superhero superheroes magic dragons "
    "pirates prison courtroom lawyer disaster survival road trip coming age classic cult "
    "quiet calm relaxing exciting fun violence violent gory gore bloody brutal"
)

# Negation cues: what follows them in the clause is not wanted ("anything but", "not into",
# "can't stand" are folded into "except" and "hate" by `PHRASES`).
NEGATIONS = _words(
    "not no without nothing never avoid except excluding dont doesnt didnt cant wont hate "
    "hated hates dislike disliked dislikes less skip none nor neither isnt wasnt minus"
)
# Words after a title that say the user disliked it ("Titanic was awful").
DISLIKE_AFTER = _words("awful terrible boring bad overrated worst dull hated horrible")
# Positive cues: a negation before them (3 words back at most) keeps its scope, else it ends.
POSITIVES = _words("want wanted prefer love loved looking give show something instead")
LIKES = _words("like liked loved love enjoyed enjoy adore adored great amazing favorite")
SEEN = _words("seen watched saw")
# Refinements: words that move the year range or the conversation rather than name a wish.
OLDER = _words("older earlier")
NEWER = _words("newer later")
OLD = _words("old classic oldie oldies")
RECENT = _words("recent new modern latest")
# Tokens `PHRASES` makes of "the older / newer the better": the order of the picks.
ORDER_TOKENS = {"oldestfirst": "oldest", "newestfirst": "newest"}
# A message with one of these replaces the wanted genres instead of adding to them.
INSTEAD = re.compile(r"\b(?:instead|actually|rather)\b")
# Words that point back at the last answer ("I've seen it", "seen them").
POINTERS = _words("it that them those these all")
PLURAL_POINTERS = _words("them those these all")
# Clause ends: a negation's scope stops here.
CLAUSE_END = re.compile(r"[,;.!?]|\b(?:but|however|though|although|instead|rather|except that)\b")
ORDINALS = {"first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5, "last": -1}
# Years and decades written in words ("nineteen eighty-five", "nineteen-eighties") are turned
# into digits by `years.digits` before any year rule reads them.
NUMBER_UNITS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
                "eight": 8, "nine": 9}  # fmt: skip
NUMBER_TEENS = {"ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14,
                "fifteen": 15, "sixteen": 16, "seventeen": 17, "eighteen": 18,
                "nineteen": 19}  # fmt: skip
NUMBER_TENS = {"twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60,
               "seventy": 70, "eighty": 80, "ninety": 90}  # fmt: skip
CENTURIES = {"nineteen": 1900, "two thousand": 2000}
# A year bound: the cue and the year it makes the first or last allowed one ("before 1980"
# allows up to 1979; "until 1980" up to 1980). "from 1980 on" is `FROM_ON` in `years.py`.
UP_TO = {"before": -1, "earlier than": -1, "older than": -1, "prior to": -1, "pre": -1,
         "until": 0, "till": 0, "up to": 0, "up until": 0, "no later than": 0,
         "at the latest": 0}  # fmt: skip
FROM = {"after": 1, "later than": 1, "newer than": 1, "more recent than": 1, "post": 1,
        "since": 0, "starting": 0, "starting in": 0, "no earlier than": 0}  # fmt: skip
# Joins two years into a range ("1970 to 1980", "between 1970 and 1980").
RANGE_JOINS = ("-", "–", "to", "and", "until", "through", "thru", "till")
PARTS_OF_DECADE = {"early": (0, 3), "mid": (3, 6), "late": (6, 9)}
DECADE_WORDS = {
    "twenties": 1920,
    "thirties": 1930,
    "forties": 1940,
    "fifties": 1950,
    "sixties": 1960,
    "seventies": 1970,
    "eighties": 1980,
    "nineties": 1990,
}
# Words a typo-tolerant match may correct to (`spelling.py`): genre words and decade words.
# Words shorter than `MIN_TYPO_LENGTH` are never corrected ("war" is not "was"), nor
# corrected to.
MIN_TYPO_LENGTH = 4

# Mood and soft words -> genres by meaning (`moods.py`): each genre's descriptors, embedded as
# "a <word> movie" by the sentence encoder; a message word (with no genre word in the
# message) takes the genre of its nearest descriptor when it is close enough and clearly
# closer than to any other genre's (`ChatSettings.mood_similarity`, `mood_margin`).
GENRE_DESCRIPTORS = {
    "Action": "action fights chases explosions stunts shootouts",
    "Adventure": "adventure quest journey treasure exploration",
    "Animation": "animated cartoon animation",
    "Children's": "kids children family childrens",
    "Comedy": "comedy funny jokes humor laughs",
    "Crime": "crime gangsters mafia robbery police heist",
    "Documentary": "documentary factual real-life",
    "Drama": "drama emotional serious moving tearjerker",
    "Fantasy": "fantasy magic sorcery witches myths legends",
    "Film-Noir": "noir hardboiled femme-fatale",
    "Horror": "horror scary fear monsters ghosts gore gory blood bloody nightmares",
    "Musical": "musical songs singing music dancing",
    "Mystery": "mystery puzzle detective whodunit clues",
    "Romance": "romance love romantic",
    "Sci-Fi": "sci-fi futuristic space aliens robots",
    "Thriller": "thriller thrilling gripping suspense tension tense danger",
    "War": "war soldiers battle combat",
    "Western": "western cowboys gunfights frontier",
}

# Series whose entries share no name ("like Star Wars but not its sequels"); the others are
# found from their titles (`parse.SeriesIndex`).
SERIES = (
    ("Star Wars (1977)", "Empire Strikes Back, The (1980)", "Return of the Jedi (1983)"),
    ("Raiders of the Lost Ark (1981)", "Indiana Jones and the Last Crusade (1989)"),
)

# Words that say how the user asks, not what they want; never soft wishes.
FILLER = _words(
    "i me my we us you it its it's that this those these them they loved love liked like "
    "likes enjoyed enjoy want wants wanted need looking look something anything recommend "
    "recommendation recommendations suggest suggestions please give show find watch "
    "watched seen see saw good great nice best really also maybe kind sort similar else "
    "another one ones thing things tonight today hi hello hey thanks thank would could "
    "should do does did what which how why movie movies film films flick flicks more some "
    "any very too so just actually instead rather prefer one's ve ive id i'd i'm im am is "
    "are was were be been have has had a an the and or of to in on for with at from by "
    "about as into than then there here all let lets let's can cant will wont maybe "
    "perhaps quite pretty bit little lot lots much mood feel feeling time go ok okay yes "
    "yeah sure now again same kinda sorta type types number already enough i've we've "
    "you've that's let's what's"
)
