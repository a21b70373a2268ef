"""A generated stand-in for the Gutenberg files: the real header, markers and footer around
Austen-like sentences from a small grammar (learnable structure), so the end-to-end tests run
without ../shared/data."""

import random

NAMES = ["Anne", "Elizabeth", "Mr. Darcy", "Emma", "Captain Wentworth", "Catherine", "Mrs. Bennet"]
VERBS = ["was", "seemed", "could not be", "had always been", "was never"]
ADJECTIVES = ["agreeable", "handsome", "very happy", "much mortified", "tolerably civil"]
CLAUSES = [
    "and the evening passed in conversation",
    "though the weather was wet",
    "for nothing could be more natural",
    "while the others walked to Bath",
    "and she felt it most acutely",
]

HEADER = (
    "\ufeffThe Project Gutenberg eBook of {title}\r\n\r\nThis ebook is for the use of anyone "
    "anywhere.\r\n\r\n*** START OF THE PROJECT GUTENBERG EBOOK {upper} ***\r\n\r\n\r\n"
)
FOOTER = (
    "\r\n\r\n*** END OF THE PROJECT GUTENBERG EBOOK {upper} ***\r\n\r\nUpdated editions will "
    "replace the previous one.\r\n"
)


def austen_like(paragraphs: int, seed: int) -> str:
    rng = random.Random(seed)
    out = []
    for _ in range(paragraphs):
        sentences = [
            f"{rng.choice(NAMES)} {rng.choice(VERBS)} {rng.choice(ADJECTIVES)}, "
            f"{rng.choice(CLAUSES)}."
            for _ in range(rng.randint(2, 5))
        ]
        out.append("\r\n".join(" ".join(sentences[i : i + 2]) for i in range(0, len(sentences), 2)))
    return "\r\n\r\n".join(out)


def write_corpus(folder, paragraphs: int = 300) -> None:
    """Two works in Gutenberg's file format, named as local copies are."""
    folder.mkdir(parents=True, exist_ok=True)
    for seed, (name, title) in enumerate(
        [("105-persuasion.txt", "Persuasion"), ("121-northanger-abbey.txt", "Northanger Abbey")]
    ):
        body = austen_like(paragraphs, seed)
        text = (
            HEADER.format(title=title, upper=title.upper())
            + body
            + FOOTER.format(upper=title.upper())
        )
        (folder / name).write_bytes(text.encode("utf-8"))
    return folder
