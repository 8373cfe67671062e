"""Who answers: the participant at the keyboard/mouse, or a simulated participant.

Both go through the same code path in the trial loop: a :class:`Response` with
the answer and the LSL time of the key press. The auto responder answers
correctly with probability ``accuracy`` after a log-normal reaction time
(median ``rt_median_s``, 1.2 s by default), continues instructions and
breaks after 0.5 s, and presses the conversation turn keys every 2-5 s.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from avlab.protocol.plan import QuestionPlan, TrialPlan

__all__ = ["AutoResponder", "Response"]


@dataclass(frozen=True)
class Response:
    """An answer.

    Attributes
    ----------
    answer : str | int | None
        Option index (0-based), typed text or experimenter score; None: no answer.
    t_lsl : float
        Time of the response, LSL clock, s.
    correct : bool | None
    """

    answer: str | int | None
    t_lsl: float
    correct: bool | None = None


class AutoResponder:
    """The simulated participant's answers.

    Parameters
    ----------
    accuracy : float
        Probability of a right answer.
    seed : int
    rt_median_s : float
        Median reaction time, s (log-normal).
    rt_sigma : float
        Spread of the log reaction time (log-normal sigma).
    """

    def __init__(
        self, accuracy: float, seed: int, rt_median_s: float = 1.2, rt_sigma: float = 0.3
    ) -> None:
        self.accuracy = accuracy
        self.rt_median_s = rt_median_s
        self.rt_sigma = rt_sigma
        self.rng = np.random.default_rng([seed, 0xA5])

    def rt(self) -> float:
        """Return a reaction time, s (log-normal, clipped to 0.3-4 x the median)."""
        rt = self.rng.lognormal(np.log(self.rt_median_s), self.rt_sigma)
        return float(np.clip(rt, 0.25 * self.rt_median_s, 4.0 * self.rt_median_s))

    def choice(self, q: QuestionPlan) -> int:
        """Return the option chosen for a multiple-choice question (0-based)."""
        n = max(len(q.options), 1)
        right = q.correct if q.correct is not None else int(self.rng.integers(n))
        if self.rng.random() < self.accuracy or n == 1:
            return right
        return int(self.rng.choice([k for k in range(n) if k != right]))

    def typed(self, trial: TrialPlan, text: str) -> str:
        """Return a typed word report of ``text`` (a word missed when wrong)."""
        words = text.split()
        if self.rng.random() < self.accuracy or len(words) < 2:
            return " ".join(words)
        del words[int(self.rng.integers(len(words)))]
        return " ".join(words)

    def score(self, text: str) -> int:
        """Return an experimenter's words-correct score for ``text``."""
        n = len(text.split())
        return n if self.rng.random() < self.accuracy else int(self.rng.integers(n))

    def turn_gap(self) -> float:
        """Return seconds until the next conversation turn."""
        return float(self.rng.uniform(2.0, 5.0))
