"""The accuracy measures' grading (pure) and the text normalisation before synthesis."""

from __future__ import annotations

import pytest

from benchmarks.corpus import Question, Rendition
from benchmarks.grading import grade_turn, measures, normalise, rate, word_error_rate
from tts.normalize import spoken_form


def test_normalise_makes_numerals_case_and_punctuation_alike() -> None:
    assert normalise("What's 2 plus 2?") == normalise("what is two plus two") == "what is two plus two"
    assert normalise("It's 24.5 degrees, isn't it?") == "it is twenty four point five degrees is not it"
    assert normalise("1,000 people") == "one thousand people"


def test_word_error_rate_counts_against_the_reference() -> None:
    assert word_error_rate("What is two plus two?", "What is 2 plus 2.") == (0, 5)
    assert word_error_rate("What is the capital of France?", "What is the capital of Francis") == (1, 6)
    assert word_error_rate("Hello there", "") == (2, 2) and word_error_rate("", "noise") == (1, 0)
    assert rate([(1, 6), (0, 4)]) == 0.1 and rate([]) is None


def test_conversation_turns_are_judged_on_topic_and_polite() -> None:
    greeting = Question("Hello, how are you today?", (), "conversation", ("well", "fine", "help"))
    assert greeting.correct("I am doing well, thank you! How can I help?") is True
    assert greeting.correct("The capital of France is Paris.") is False  # off topic
    assert greeting.correct("Well.") is False  # not a sentence
    assert greeting.correct("Fine, stop asking stupid questions.") is False  # rude
    assert Question("Hi", (), "conversation").correct("Hello!") is None  # no topics: not graded


def test_an_answer_counts_where_the_reply_does_not_deny_it() -> None:
    tomato = Question("Is a tomato a fruit?", ("yes", "fruit"), "yes-no")
    assert tomato.correct("Yes, botanically it is a fruit.") is True
    assert tomato.correct("A tomato is a fruit.") is True  # no yes or no: the key word
    assert tomato.correct("No doubt, a tomato is a fruit.") is True  # "no doubt" answers nothing
    assert tomato.correct("A tomato is not only a fruit, it is also a berry.") is True
    assert tomato.correct("No, a tomato is not a fruit.") is False  # the key word is there, the answer is no
    assert tomato.correct("A tomato isn't a fruit, it's a vegetable.") is False  # negated
    assert tomato.correct("A tomato isn\u2019t a fruit.") is False  # a typographic apostrophe
    assert tomato.correct("No, tomatoes are vegetables.") is False
    even = Question("Is ten an odd number?", ("no", "even"), "yes-no")
    assert even.correct("No, ten is even.") is True and even.correct("Yes, ten is odd.") is False
    assert even.correct("Ten is an even number.") is True and even.correct("Ten is not an even number.") is False
    assert even.correct("Ten is not odd but even.") is True
    whale = Question("Is a whale a mammal?", ("yes",), "yes-no")
    assert whale.correct("Whales have no gills; yes, a whale is a mammal.") is True  # "no gills" is not an answer
    assert whale.correct("Yes it is.") is True and whale.correct("No it is a fish.") is False
    assert Question("Is the sun cold?", ("no",), "yes-no").correct("No, the sun is not cold, it is very hot.") is True
    feathers = Question("Which is heavier, a kilogram of feathers or a kilogram of iron?", ("same", "equal", "neither"), "yes-no")
    assert feathers.correct("Neither, they weigh the same.") is True
    assert feathers.correct("They are not the same; iron is heavier.") is False
    day = Question("How many hours are in a day?", ("twenty-four", "24"))
    assert day.correct("There are twenty-four hours in a day.") is True
    assert day.correct("A day has 24 hours.") is True
    france = Question("What is the capital of France?", ("paris",))
    assert france.correct("It is not Paris, it is Lyon.") is False
    assert france.correct("If I'm not mistaken, it's Paris.") is True  # the denial is in another clause
    assert france.correct("The capital of France is not Marseille but Paris.") is True
    assert france.correct("The answer is 'Paris'.") is True
    assert Question("What is the largest planet?", ("jupiter",)).correct("Jupiter's the largest planet.") is True
    assert Question("What is pi to two places?", ("3.14",)).correct("Pi is about 3.14.") is True


def test_three_measures_each_against_its_own_reference() -> None:
    france = Question("What is the capital of France?", ("paris",))
    hello = Question("Good morning!", (), "conversation", ("morning",))
    misheard = grade_turn(france, "What is the capital of Francis?", "The capital of France is Paris.", "Capital Francis Paris")
    assert misheard.heard_errors == (1, 6) and misheard.answered_right and misheard.round_trip_right
    lost = grade_turn(france, "What is the capital of France?", "It is Paris.", "It is pairs.")
    assert lost.heard_errors == (0, 6) and lost.answered_right and not lost.round_trip_right
    assert lost.audible_errors == (1, 3)
    wrong = grade_turn(france, "What is the capital of France?", "It is Lyon.", "It is Lyon.")
    judged = grade_turn(hello, "Good morning!", "Good morning to you too!", "Good morning to you too.")
    silent = grade_turn(france, None, None, "")
    assert silent.heard_errors is None and silent.answered_right is None and silent.audible_errors is None
    rows = [(france, "clean", misheard), (france, "noisy", lost), (france, "clean", wrong), (hello, "accented", judged),
            (france, "clean", silent)]
    m = measures(rows)
    assert m["turns"] == 5 and m["heard_wer"] == pytest.approx(1 / 20, abs=1e-4) and m["heard_exact"] == 0.75
    assert m["answered_right"] == pytest.approx(2 / 3, abs=1e-3) and m["conversation_judged"] == 1.0
    assert m["round_trip"] == pytest.approx(1 / 4) and m["kept_right"] == 0.5
    assert set(m["by_condition"]) == {"clean", "noisy", "accented"} and m["by_condition"]["noisy"]["kept_right"] == 0.0
    assert m["by_kind"]["conversation"]["conversation_judged"] == 1.0


def test_rendition_conditions() -> None:
    assert Rendition("flite:kal").condition == "clean" and Rendition("espeak:en-gb").condition == "accented"
    assert Rendition("espeak:en-gb", snr_db=10.0).condition == "noisy"


@pytest.mark.parametrize(("written", "spoken"), [
    ("It costs $5.99.", "It costs five dollars and ninety-nine cents."),
    ("It is $1,200 now", "It is one thousand two hundred dollars now"),
    ("Water boils at 100°C.", "Water boils at 100 degrees Celsius."),
    ("About 3.5 km/h", "About 3.5 kilometres per hour"),
    ("He ran 1 km and lifted 5 kg.", "He ran 1 kilometre and lifted 5 kilograms."),
    ("It was built in 1999.", "It was built in nineteen ninety-nine."),
    ("Dr. Smith is here.", "Doctor Smith is here."),
    ("Two plus two is 4, mm-hmm.", "Two plus two is 4, mm-hmm."),  # espeak-ng reads plain numbers well: left alone
])
def test_spoken_form_writes_out_what_espeak_reads_wrongly(written: str, spoken: str) -> None:
    assert spoken_form(written) == spoken and spoken_form(spoken) == spoken
