"""DETOX's stand-in ("detox-synth"): the harmful stand-in's generated data and tiny models, a
RealToxicityPrompts stand-in, and a deterministic marker-counting toxicity judge."""

from __future__ import annotations

from unlearnbench.benchmarks.base import stand_in_key
from unlearnbench.benchmarks.detox import DetoxBenchmark
from unlearnbench.benchmarks.llmu_common import stand_in_recipe


class DetoxSynthBenchmark(DetoxBenchmark):
    """DETOX stand-in: harmful-synth's fictional harm, toxicity counted from its marker words."""

    name = "detox-synth"
    stand_in_for = "detox"
    eval_options = {**DetoxBenchmark.eval_options, "judge": "detox-synth", "max_new_tokens": 48,
                    "zero_shot_tasks": None}
    # The tiny model learnt every prompt in the LLMU layout only; a bare prompt would measure
    # its ignorance of the layout, not its toxicity, so the unseen prompts get the same layout.
    unseen_prompt = DetoxBenchmark.forget_prompt
    n_forget = 50  # of the stand-in's ~110 unsafe responses, as 200 of PKU's tens of thousands is a sample

    def __init__(self, path: str | None = None, synth=None):
        from unlearnbench.data.harmful_synth import SynthConfig

        self.synth = synth or SynthConfig()
        super().__init__(path)

    def default_path(self) -> str:
        from unlearnbench.data.detox_synth import synth_dir

        return str(synth_dir(self.synth))

    def recipe(self):
        from unlearnbench.data.detox_synth import tiny_texts

        return stand_in_recipe(self, tiny_texts, stand_in_key(self, f"detox-{self.synth.key()}"))
