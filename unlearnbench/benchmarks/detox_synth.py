"""DETOX's stand-in ("detox-synth"): the harmful stand-in's generated data and tiny models, a
RealToxicityPrompts stand-in, and a deterministic marker-counting toxicity judge."""

from __future__ import annotations

from unlearnbench.benchmarks.detox import DetoxBenchmark
from unlearnbench.benchmarks.llmu_common import LLMUStandIn
from unlearnbench.data import detox_synth


class DetoxSynthBenchmark(LLMUStandIn, DetoxBenchmark):
    """DETOX stand-in: harmful-synth's fictional harm, toxicity counted from its marker words."""

    name = "detox-synth"
    stand_in_for = "detox"
    eval_options = {**DetoxBenchmark.eval_options, "judge": "detox-synth", "max_new_tokens": 48,
                    "zero_shot_tasks": None}
    # The tiny model learnt every prompt in the LLMU layout only; a bare prompt would measure
    # its ignorance of the layout, not its toxicity, so the unseen prompts get the same layout.
    unseen_prompt = DetoxBenchmark.forget_prompt
    n_forget = 50  # of the stand-in's ~110 unsafe responses, as 200 of PKU's tens of thousands is a sample
    generator = detox_synth.STAND_IN
    tiny_texts = staticmethod(detox_synth.tiny_texts)
