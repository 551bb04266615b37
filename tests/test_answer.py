"""Answers: best sentence, contacts (never invented), conflicting dates, abstention."""

from __future__ import annotations

from pathlib import Path

import pytest

from collab_qa.analysis import TermStats
from collab_qa.answer import answer_question, search_passages
from collab_qa.chunking import Chunk
from collab_qa.confidence import (
    asks_named_person,
    missing_answer_type,
    rests_on_unknown_name,
)
from collab_qa.conflicts import dated_statements, same_event
from collab_qa.contacts import Contact, extract_contacts
from collab_qa.documents import filler_lines, is_filler
from collab_qa.embedding import FakeEmbedder
from collab_qa.facts import dates_event, sentence_spans
from collab_qa.hits import Hit
from collab_qa.lead import best_sentence
from collab_qa.query import (
    asked_role,
    asked_types,
    asks_for_contact,
    is_follow_up,
    resolve_query,
)
from collab_qa.rerank import by_answer_type, by_role, is_placeholder_passage, placeholders_last
from collab_qa.search import Searcher
from tests.conftest import build


def hit(text: str, doc: str = "doc.txt", heading: tuple[str, ...] = ("Section",),
        title: str = "Doc") -> Hit:
    return Hit(Chunk(doc, 0, heading, 0, len(text), text), title, 1.0, 0.5, 1.0)


BIOBANK = hit("- Other human samples - KI Biobank for researchers:\n- Offers sample handling\n"
              "- For questions contact the biobank coordinator at biobank@ki.se or call "
              "08-524 820 03")
DELEGATE = hit("Cancer Core Europe\nKarolinska Institutet is one of the seven leading cancer "
               "centers.\nKI operational delegate: Christina von Gertten")
PROFILE = hit("These calls are announced on\n\n\nProfile image\n\nIsabella Palomba Rydén\n\n"
              "International Coordinator\nEmma Hägg")
HR = hit("We recommend you to contact HR office at KI. Their Negotiation Unit "
         "(förhandlingsenheten) is responsible for KI:s negotiating activities.")
NEWS = hit("Publicerad: 2023-10-17 13:17 | Uppdaterad: 2023-10-30 10:38\n26-04-2023")


def assert_from_text(contacts: list[Contact], hits: list[Hit]) -> None:
    """Every field of every contact is text of the passage it cites."""
    for contact in contacts:
        text = hits[contact.hit_rank].text
        for value in (contact.email, contact.phone, contact.name, contact.role):
            assert value is None or value in text or all(
                part in text for part in value.split(" – ")), value
        assert contact.citation == hits[contact.hit_rank].citation


def test_email_and_phone_with_the_unit_named_beside_them() -> None:
    contacts = extract_contacts([BIOBANK], people=False)
    assert [(c.name, c.email, c.phone) for c in contacts] == [
        ("biobank coordinator", "biobank@ki.se", "08-524 820 03")]
    assert_from_text(contacts, [BIOBANK])


def test_people_and_units_when_the_question_asks_for_a_contact() -> None:
    hits = [DELEGATE, PROFILE, HR]
    contacts = extract_contacts(hits, people=asks_for_contact("who is the contact?"))
    found = {(c.name, c.role) for c in contacts}
    assert ("Christina von Gertten", "KI operational delegate") in found
    assert ("Isabella Palomba Rydén", "International Coordinator") in found
    assert any(c.name and "HR office at KI" in c.name and "Negotiation Unit" in c.name
               for c in contacts)
    assert_from_text(contacts, hits)
    # Without a contact question only emails and phone numbers make a card.
    assert extract_contacts(hits, people=asks_for_contact("what is Cancer Core Europe?")) == []


def test_dates_are_not_phone_numbers_and_nothing_is_invented() -> None:
    assert extract_contacts([NEWS], people=asks_for_contact("phone number?")) == []
    assert extract_contacts([hit("No contact details here at all.")], people=True) == []
    assert asks_for_contact("Vem är kontaktperson?") and asks_for_contact("their email?")
    assert not asks_for_contact("What is ESO?")


def test_sentences_keep_emails_whole_and_join_a_name_with_its_role() -> None:
    text = BIOBANK.text
    sentences = [text[a:b] for a, b in sentence_spans(text)]
    assert sentences[-1].endswith("biobank@ki.se or call 08-524 820 03")
    profile = [PROFILE.text[a:b] for a, b in sentence_spans(PROFILE.text)]
    assert "Isabella Palomba Rydén\n\nInternational Coordinator" in profile


def test_an_initial_does_not_end_a_sentence() -> None:
    text = "Per Holm, dekan, Lena K. Ek, vd för Norrvik. Foto: A. B. Svensson. It ended."
    assert [text[a:b] for a, b in sentence_spans(text)] == [
        "Per Holm, dekan, Lena K. Ek, vd för Norrvik.", "Foto: A. B. Svensson.", "It ended."]


def test_a_sentence_broken_across_paragraphs_is_one() -> None:
    text = ("Partners come from Wales (Cardiff University)\n\nin the Tidewater project, with "
            "new equipment.\n\nThe end.\nnext line after a stop")
    assert [text[a:b] for a, b in sentence_spans(text)] == [
        "Partners come from Wales (Cardiff University)\n\nin the Tidewater project, with new "
        "equipment.", "The end.", "next line after a stop"]


def test_dated_statements_take_the_publication_year() -> None:
    swedish = hit("Avtalet - ett så kallat Memorandum of Understanding (MoU) - signerades den "
                  "17 oktober under World Health Summit.")
    english = hit("The collaboration was initiated in 2024. It is funded.")
    assert dated_statements(swedish, 2023) == [(swedish.text, "2023-10-17")]
    assert dated_statements(english, None) == [("The collaboration was initiated in 2024.",
                                                "2024")]


def test_placeholder_sections_say_nothing() -> None:

    empty = hit("Uppdragsforskning - KI\n\nKomplettera med text\n\nK - Komplettera med text\n\n"
                "26-04-2023", heading=("Uppdragsforskning - KI",))
    assert is_placeholder_passage(empty)
    assert not is_placeholder_passage(hit("KI\n\nKomplettera med text\n\nYou need to be "
                                           "aware of conflicts of interest."))
    assert not is_placeholder_passage(BIOBANK)


def test_short_lines_a_template_repeats_are_filler() -> None:
    lines = ["Read more", "Intro", "- Read more", "Read more", "Opened 2021", "Opened 2021",
             "Opened 2021", "A longer line that says something real", *["A longer line that "
             "says something real"] * 3]
    fillers = filler_lines(lines)
    assert fillers == {"read more"}
    assert is_filler("News - Read more", fillers) and not is_filler("Intro", fillers)
    section = hit("Contact\n\nRead more\n\nRead more", heading=("Contact",))
    assert not is_placeholder_passage(section)
    assert is_placeholder_passage(section, fillers)
    answer = hit("The office answers questions on grants.")
    assert placeholders_last([section, answer], fillers) == [answer, section]


def test_answer_types() -> None:
    dated, plain = hit("It was signed in May 2013."), hit("It was signed.")
    assert by_answer_type(asked_types("When was it signed?"), [plain, dated]) == [dated, plain]
    assert by_answer_type(asked_types("What was signed?"), [plain, dated]) == [plain, dated]
    assert missing_answer_type("What is the email of the office?", [plain, dated])
    assert not missing_answer_type("What is the email of the office?", [BIOBANK])


def missing_person(question: str, hits: list[Hit]) -> bool:
    """The confidence's check: a question about who holds a role, top two naming nobody."""
    return asks_named_person(question) and not any(
        contact.role for contact in extract_contacts(hits[:2], people=True))


def test_missing_person_wants_a_name_with_a_role() -> None:
    unit = hit("Support is provided by the External Engagement Office (EEO).")
    assert missing_person("Who leads the partnership?", [unit, BIOBANK])
    assert missing_person("Vem är kontaktperson för samarbetet?", [unit])
    assert not missing_person("Who represents KI in the alliance?", [unit, DELEGATE])
    assert not missing_person("Who is the contact person for exchanges?", [PROFILE])
    # Only questions about who holds a role: "who supports…" may be answered by an office.
    assert not missing_person("Who supports clinical trials?", [unit])
    assert missing_person("Who leads the partnership?", [unit, unit, DELEGATE])  # top two only


# ---------------------------------------------------------------------------- real model


@pytest.mark.slow
def test_biobank_contact_card(real_searcher: Searcher) -> None:
    answer = answer_question(real_searcher, "who do I contact about biobank samples")
    assert not answer.abstained
    assert any(c.email == "biobank@ki.se" and c.phone == "08-524 820 03"
               for c in answer.contacts)
    assert "biobank@ki.se" in (answer.best_sentence or "")
    assert_from_text(answer.contacts, answer.hits)
    follow = answer_question(real_searcher, "and their phone number?",
                             history=["who do I contact about biobank samples"])
    assert "08-524 820 03" in (follow.best_sentence or "")


@pytest.mark.slow
def test_two_events_with_two_dates_are_no_conflict(real_searcher: Searcher) -> None:
    # One source dates the signing, the other when the collaboration was initiated: two
    # events, not two sources disagreeing about one.
    answer = answer_question(real_searcher, "When was the MoU with Charité signed?")
    assert not answer.conflicts, answer.conflicts


@pytest.mark.parametrize(("first", "second", "same"), [
    ("The agreement was signed on 3 May 2021.", "Avtalet undertecknades 2020.", True),
    ("The agreement was signed on 3 May 2021.", "They signed it in 2019.", True),
    ("The project started in 2019.", "Projektet startade 2018.", True),
    ("The agreement was signed on 3 May 2021.", "The collaboration was initiated in 2024.",
     False),
    ("The centre was founded in 1990.", "The programme was launched in 1990.", False),
    ("It was renewed in 2022.", "It was signed in 2020.", False),
])
def test_dates_conflict_only_for_the_same_kind_of_event(first: str, second: str,
                                                        same: bool) -> None:
    assert same_event(first, second) is same


@pytest.mark.slow
def test_a_date_a_section_after_the_matching_sentence_comes_first(
    real_searcher: Searcher,
) -> None:
    # "KI has signed an MoU with Charite" is a section of one sentence; the date is in the
    # next section ("…The collaboration was initiated in 2024."). Without the sparse terms
    # (two-way fusion), the English passages lead and the next section comes first.
    two_way = Searcher(real_searcher.index, real_searcher.embedder, sparse_terms=False)
    assert two_way.sparse is None
    answer = answer_question(two_way, "and when was it signed?",
                             history=["Does KI have an agreement with Charité?"])
    assert not answer.abstained
    assert "initiated in 2024" in answer.hits[0].text, [h.citation for h in answer.hits]
    assert "signed a Memorandum of Understanding" in answer.hits[1].text
    assert "2024" in (answer.best_sentence or "")
    # With them, the Swedish news item that gives the signing date itself comes first.
    answer = answer_question(real_searcher, "and when was it signed?",
                             history=["Does KI have an agreement with Charité?"])
    assert "signerades den 17 oktober" in answer.hits[0].text, [h.citation for h in answer.hits]


@pytest.mark.slow
def test_abstains_on_a_country_the_documents_never_mention(real_searcher: Searcher) -> None:
    answer = answer_question(real_searcher, "Who coordinates our collaboration with Japan?")
    assert answer.abstained and answer.best_sentence is None and answer.contacts == []
    assert answer.hits, "abstaining still lists the possibly related passages"
    assert not answer_question(real_searcher, "Who coordinates collaboration with Germany?"
                               ).abstained


@pytest.mark.slow
def test_one_known_name_of_alternatives_is_enough(real_searcher: Searcher) -> None:
    stats = real_searcher.index.term_stats
    assert rests_on_unknown_name("Do we have a partner in Budapest?", stats)
    assert not rests_on_unknown_name("A partner in Budapest or elsewhere in Hungary?", stats)
    assert rests_on_unknown_name("Do we work with Japan or China?", stats)
    assert not answer_question(
        real_searcher, "Do we have a partner in Budapest or elsewhere in Hungary?").abstained


def test_follow_up_detection() -> None:
    assert is_follow_up("which partners are involved?")
    assert is_follow_up("and when was it renewed?")
    assert not is_follow_up("who do I ask about grants")
    assert not is_follow_up("Which universities are partners in Cutcancer?")


@pytest.mark.slow
def test_a_follow_up_stays_with_the_previous_document(real_searcher: Searcher) -> None:
    hits = search_passages(real_searcher, "which partners are involved?", k=3,
                                history=["What is the Cutcancer twinning project?"])
    assert hits[0].doc_id == "cutcancer-twinning-project.txt"
    assert "Swansea University" in hits[0].text


def _two_sources(tmp_path: Path, english: str, swedish: str) -> Searcher:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "news.txt").write_text(
        "Partnership news\n\nPublished 2021-06-01\n\n" + english + "\n", encoding="utf-8")
    (corpus / "nyheter.txt").write_text(
        "Nyheter om partnerskap\n\n" + swedish + "\n", encoding="utf-8")
    for topic in ("library", "canteen", "parking", "gym", "printing", "lockers", "mail"):
        (corpus / f"{topic}.txt").write_text(
            f"The {topic}\n\nThe {topic} opens at nine and closes at five on weekdays.\n",
            encoding="utf-8")
    embedder = FakeEmbedder()
    return Searcher(build(corpus, tmp_path / "index", embedder), embedder)


def test_sources_giving_two_dates_for_one_signing_conflict(tmp_path: Path) -> None:
    searcher = _two_sources(tmp_path, "The agreement with Zephyrion was signed on 3 May 2021.",
                            "Avtalet med Zephyrion undertecknades i mars 2020.")
    answer = answer_question(searcher, "When was the agreement with Zephyrion signed?",
                             k=10, abstain_below=-10)
    assert [sorted(c.dates) for c in answer.conflicts] == [["2020-03", "2021-05-03"]]


def test_a_signing_and_a_start_date_are_no_conflict(tmp_path: Path) -> None:
    searcher = _two_sources(tmp_path, "The agreement with Zephyrion was signed on 3 May 2021.",
                            "Samarbetet med Zephyrion startade i mars 2020.")
    answer = answer_question(searcher, "When was the agreement with Zephyrion signed?",
                             k=10, abstain_below=-10)
    assert answer.conflicts == []


def test_a_date_of_the_event_asked_about_comes_first() -> None:
    started = hit("The collaboration was initiated in 2024.")
    signed = hit("Avtalet signerades den 17 oktober 2023.")
    plain = hit("KI has signed an agreement.")
    kinds = asked_types("When was the agreement signed?")
    assert by_answer_type(kinds, [plain, started, signed], "signed") == [signed, plain, started]
    # With no date of that event at hand, any date still helps.
    assert by_answer_type(kinds, [plain, started], "signed") == [started, plain]
    assert dates_event("It was renewed in May 2018.", "renewed")
    assert not dates_event("It was renewed. It began in 2013.", "renewed")


def test_a_role_asked_in_one_language_is_found_in_the_other() -> None:
    assert asked_role("Who is the president of Norrvik University?") == "rector"
    assert asked_role("Vem är dekan vid fakulteten?") == "dean"
    assert asked_role("Who runs the lab?") is None
    assert asked_role("What does the dean decide?") is None  # not a who-question
    caption = hit("Lena Ek, rektor för Norrvik universitet, och Per Holm, dekan.")
    quote = hit("Samarbetet stärker alla parter, säger Lena Ek, universitetets rektor.")
    plain = hit("The president of the student union opened the meeting.")
    other = hit("Norrvik University hosts a yearly summit on public health.")
    role = asked_role("Who is the president of Norrvik University?")
    # A passage naming a person in the role moves up two places (ties keep the earlier one
    # first); one with the role but no name does not move.
    assert by_role(role, [other, plain, quote]) == [other, quote, plain]
    assert by_role(role, [plain, quote]) == [quote, plain]
    assert by_role(None, [other, caption]) == [other, caption]
    stats = TermStats.from_passages([(quote.chunk.id, quote.text)])
    lead = best_sentence(resolve_query("Who is the president of Norrvik University?"),
                         hit("Avtalet gäller i fem år. " + quote.text), stats)[0]
    assert "Lena Ek" in lead


def test_the_person_in_the_role_asked_about_comes_first_among_the_contacts() -> None:
    from collab_qa.contacts import role_first

    caption = hit("Per Holm, dekan vid Norrvik, Lena Ek, rektor för Norrvik universitet, "
                  "och Ulf Berg, direktör för sjukhuset.")
    cards = extract_contacts([caption], people=True)
    assert [c.name for c in cards][:2] == ["Per Holm", "Lena Ek"]
    first = role_first(cards, asked_role("Who is the president of Norrvik University?"))
    assert [c.name for c in first] == ["Lena Ek", "Per Holm", "Ulf Berg"]
    assert role_first(cards, None) == cards


def test_how_do_i_leads_with_where_to_turn() -> None:
    passage = hit("Most companies value a partnership that lasts for many years. "
                  "Help with a partnership is provided by the Partner Office (PO).")
    stats = TermStats.from_passages([(passage.chunk.id, passage.text)])
    for question, lead in (("How do I set up a partnership?", "Partner Office"),
                           ("What is a good partnership?", "many years")):
        assert lead in best_sentence(resolve_query(question), passage, stats)[0]


def test_role_colon_names_finds_what_the_pattern_finds() -> None:
    from collab_qa.facts import ROLE_COLON_NAME, role_colon_names

    sentences = ["Coordinator: Anna Berg", "International coordinator : Erik Lund, phone",
                 "Contact person: Maria Svensson and Head of unit: Per Olsson",
                 "Vision: Better health for all", "Ett exempel: EU:s projekt", "no colon here",
                 "KI: Current research collaboration with other companies", ":", ""]
    for sentence in sentences:
        expected = [(m.span(), m.groups()) for m in ROLE_COLON_NAME.finditer(sentence)]
        assert [(m.span(), m.groups()) for m in role_colon_names(sentence)] == expected
    assert role_colon_names("KI operational delegate: Anna Berg")[0].group("name") == "Anna Berg"


@pytest.mark.parametrize(("question", "dangling"), [
    ("and their phone number?", True),
    ("och när skrevs det under?", True),
    ("what else do they do?", True),
    ("What about Charité?", False),  # it names its subject
    ("who supports clinical trials", False),  # short, but refers to nothing before it
])
def test_a_question_that_refers_to_nothing_asked_before_dangles(question: str,
                                                                dangling: bool) -> None:
    assert resolve_query(question).dangling is dangling
    assert not resolve_query(question, ["Who runs the biobank?"]).dangling
