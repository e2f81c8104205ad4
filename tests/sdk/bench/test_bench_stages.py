"""Progress of a bench run: one line per stage, elapsed time, time left corrected by the stages already done."""
from tvreid_sdk.bench import SdkBenchCfg
from tvreid_sdk.bench.sdk_bench import Variant
from tvreid_sdk.bench.stages import Stage, StageClock, model_cost, plan_sdk_stages
from tvreid_sdk.modeling.arch import get_arch


class FakeClock:
    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


def test_lines_say_where_the_run_is_and_what_is_left():
    clock, lines = FakeClock(), []
    stages = StageClock(lines.append, [Stage("a", 10), Stage("b", 20), Stage("c", 30)], clock=clock)
    stages.start("a")
    assert lines[-1] == "[1/3] a (0:00 so far, about 1:00 left)"
    clock.t += 20  # "a" took twice its estimate: what is left is scaled by 2
    stages.start("b")
    assert lines[-1] == "[2/3] b (0:20 so far, about 1:40 left)"
    assert stages.remaining_s() == 100
    clock.t += 10
    assert stages.remaining_s() == 90  # b half done by its (scaled) estimate
    stages.start("unplanned")  # added on the fly, no estimate
    assert lines[-1].startswith("[4/4] unplanned (0:30 so far")
    clock.t += 5
    assert stages.finish() == 35 and lines[-1] == "benchmark done in 0:35"


def test_replace_pending_keeps_what_is_done():
    clock, lines = FakeClock(), []
    stages = StageClock(lines.append, [Stage("export", 10), Stage("guess", 50)], clock=clock)
    stages.start("export")
    clock.t += 10
    stages.replace_pending([Stage("tokenizer", 5), Stage("encoders", 5)])
    assert [s.name for s in stages.stages] == ["export", "tokenizer", "encoders"]
    stages.start("tokenizer")
    assert lines[-1] == "[2/3] tokenizer (0:10 so far, about 0:10 left)"


def test_plan_follows_the_config_and_model_size():
    cfg = SdkBenchCfg(gallery_sizes=(100_000, 1_000_000), queries=(1, 32), text_batches=(1,), video_batches=(2,))
    arch = get_arch("dmca-vit-b32")
    variants = [Variant("ort-cpu", "fp32", "cpu"), Variant("ort-cpu", "int8", "cpu")]
    plan = plan_sdk_stages(cfg, variants, arch, 8, n_matchers=3)
    assert [s.name for s in plan] == ["tokenizer", "copy bandwidth + matching", "compact gallery", "text query gallery",
                                      "encoders: ort-cpu fp32 on cpu", "encoders: ort-cpu int8 on cpu"]
    assert plan[-2].estimate_s > plan[-1].estimate_s > 0  # fp32 costs more than int8
    assert model_cost(arch)[0] == 1.0 and model_cost(get_arch("tiny-test"))[0] < 0.01
    tiny = plan_sdk_stages(cfg, variants, get_arch("tiny-test"), 4, n_matchers=3)
    assert tiny[-1].estimate_s < plan[-1].estimate_s / 5
