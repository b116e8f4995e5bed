"""A closed-loop outreach simulation: the engine decides, simulated prospects answer, in event time.

Used by `tests/operators/test_simulation.py` (assertions) and `benchmarks/sim_adaptive.py`
(tables and JSON), which imports it as `sim` from its own directory, as it does `_common`; the
tests import it as `benchmarks.sim`. Everything is deterministic: one seed names the prospects,
their hidden preferences, their enrollment times and every outcome draw, and nothing reads the
wall clock.

Prospects (`model`). `prospects` prospects over the three observed segments in the proportions
of `segment_mix` (default equal): digital natives (25-35) sms 47 %, email 23 %, LinkedIn 34 %,
phone 12 %; digital adopters (36-45) 28/41/19/18; traditional (46-55) 19/52/8/31. Chat was never
measured: the engine guesses 0.25, the prospects' affinity is `chat_rate` (0.15). Each prospect
has a profile (its declared segment, one of six time zones), sms and phone consent.

Hidden preferences. A share `deviate_share` of prospects has the channel affinities of another
segment than the one declared ("a 28-year-old researching a complex financial decision behaved
like a 48-year-old"): the engine's priors are wrong for them, and only their behaviour can tell.
With `concentration` = k the affinities are further drawn from Beta(k m, k (1 - m)) around the
(hidden) segment's rate m; None gives the rates exactly.

Answers. Uncalibrated (`base_response` None, the first study's model), a touch on channel c is
answered with probability the affinity itself, so ~90 % of prospects answer something in three
weeks. Calibrated (the seed's 31 %): probability min(0.95, s x propensity x affinity), the
propensity Gamma(`propensity_shape`, 1/shape) with mean 1 (many hardly answer anything, a few
answer much), and s found by bisection (`model.calibrate`) so that `basic`'s fixed channels are
answered by `base_response` of the prospects over the horizon. A prospect touched on another
channel than their own top one who does not answer there answers on their top channel instead
with probability `cross_share` x their own answer rate there (texts back, writes an email,
answers on LinkedIn, opens a chat, returns the call): an answer, and a reply.

Outcomes (`run`). For every command (not `rep` hand-offs) a fixed number of uniform draws from
the prospect's own outcome stream decide, in this order: an opt-out (per touch: 0.5 % email,
LinkedIn, chat; 1 % sms, phone; sms by replying STOP), else a complaint (0.1 %, 0.2 %), else an
answer: email `opened` (mean 8 h), then with probability 0.35 a `replied`; sms `replied` (1 h);
LinkedIn (12 h); chat (30 min); phone `call_outcome` answered (unanswered: `no_answer`). Delays
are capped at 60 h, inside the engine's 72 h response window. Opens and call outcomes name their
command, so response branching runs. The adverse rates are the same in every arm and depend
only on the channel.

Arms (`arms`) share everything (common random numbers): prospect i has the same profile, hidden
preferences, enrollment time and outcome streams in every arm, and its k-th touch uses the same
draws, so differences are paired (`metrics.paired`; over seeds `paired_seeds`, `relative`).
`basic` (the built-in fixed channels); `adaptive` (basic's timing and topics, every channel
`preferred`); ablations with learning, priors or waiting off; `auto_requests`; and
`adaptive_oracle`, where each prospect states their hidden top channel (`prefer`) before the
first touch: what perfect detection of the channel could reach, a ceiling for any learning.

Enrollment: a weekday of the first week (from Monday 2026-03-02), 09:00-17:00 in the prospect's
zone (`business`) or any minute (`anytime`).
"""

from .arms import (
    ADAPTIVE,
    BASIC,
    NO_INFO,
    ORACLE,
    PRIORS_ONLY,
    Arm,
    adaptive_toml,
    arms,
    sim_policy,
    with_preference,
)
from .metrics import (
    ArmResult,
    Outcome,
    Paired,
    Relative,
    channel_mix,
    paired,
    paired_seeds,
    path_changes,
    relative,
    summary,
)
from .model import (
    CHAT_RATE,
    EQUAL_MIX,
    SEGMENT_AGES,
    SEGMENTS,
    SimConfig,
    SimProspect,
    calibrate,
    first_study,
    make_prospects,
    parse_mix,
)
from .run import COMPLAINT, OPT_OUT, basic_path, run_arm, simulate

__all__ = [
    "ADAPTIVE",
    "BASIC",
    "CHAT_RATE",
    "COMPLAINT",
    "EQUAL_MIX",
    "NO_INFO",
    "OPT_OUT",
    "ORACLE",
    "PRIORS_ONLY",
    "SEGMENTS",
    "SEGMENT_AGES",
    "Arm",
    "ArmResult",
    "Outcome",
    "Paired",
    "Relative",
    "SimConfig",
    "SimProspect",
    "adaptive_toml",
    "arms",
    "basic_path",
    "calibrate",
    "channel_mix",
    "first_study",
    "make_prospects",
    "paired",
    "paired_seeds",
    "parse_mix",
    "path_changes",
    "relative",
    "run_arm",
    "sim_policy",
    "simulate",
    "summary",
    "with_preference",
]
