"""Word lists of the rule-based parser (`mmsrarec.chat.rules`): one place for every word rule.

Genre names are ML-100K's; a dataset whose item text has no `Genres:` line gets no genre
words (they stay soft wishes, searched by embedding).
"""

from __future__ import annotations

import re


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Spellings folded to one token before parsing ("science fiction" -> "scifi").
PHRASES = [
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

# "without violence", "less violent": these genres are excluded (a hard condition).
VIOLENCE_WORDS = _words("violence violent gory gore bloody brutal")
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

# Negation cues: what follows them in the clause is not wanted.
NEGATIONS = _words(
    "not no without nothing never avoid except dont doesnt didnt cant wont hate hated "
    "hates dislike disliked dislikes less skip none nor neither isnt wasnt"
)
# Words after a title that say the user disliked it ("Titanic was awful").
DISLIKE_AFTER = _words("awful terrible boring bad overrated worst dull hated horrible")
# Positive cues: a negation before them (3 words back at most) keeps its scope, else it ends.
POSITIVES = _words("want wanted prefer love loved looking give show something instead")
LIKES = _words("like liked loved love enjoyed enjoy adore adored great amazing favorite")
SEEN = _words("seen watched saw")
# Clause ends: a negation's scope stops here.
CLAUSE_END = re.compile(r"[,;.!?]|\b(?:but|however|though|although|instead|rather|except that)\b")
ORDINALS = {"first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5, "last": -1}
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
