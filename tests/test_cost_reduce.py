import json
import resource
import socket
import sys
import time
import warnings

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from unlearnbench.metrics.cost import CostTracker
from unlearnbench.metrics.reduce import ItemValues
from unlearnbench.parallel import gather_records


def test_cost_tracker_counts_and_times():
    with CostTracker() as cost:
        cost.add_tokens(10)
        cost.add_tokens(5)
        cost.add_step()
        cost.add_step()
        time.sleep(0.05)
    d = cost.as_dict()
    assert set(d) == {"wall_time_s", "cpu_time_s", "tokens", "steps", "peak_host_mem_mib",
                      "peak_accel_mem_mib", "world_size"}
    # Sleeping costs wall time, not CPU time.
    assert 0.0 <= d["cpu_time_s"] < d["wall_time_s"]
    assert d["tokens"] == 15 and d["steps"] == 2
    assert 0.05 <= d["wall_time_s"] < 5.0
    assert d["world_size"] == 1
    if not torch.cuda.is_available():
        assert d["peak_accel_mem_mib"] is None
    # wall time is frozen once the block ends
    time.sleep(0.02)
    assert cost.as_dict()["wall_time_s"] == d["wall_time_s"]
    assert cost.as_dict()["cpu_time_s"] == d["cpu_time_s"]


@pytest.mark.skipif(sys.platform != "linux", reason="ru_maxrss is KiB on Linux only")
def test_cost_tracker_host_memory_is_mib():
    with CostTracker() as cost:
        pass
    mib = cost.as_dict()["peak_host_mem_mib"]
    kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    assert mib == pytest.approx(kib / 1024, rel=0.05)
    # a process that has imported torch holds well over 10 MiB; bytes-vs-KiB slips land far off
    assert 10 < mib < 1_000_000


def test_gather_records_single_process_is_identity():
    recs = [{"_order": 2, "v": 1.0}, {"_order": 0, "v": 2.0}]
    assert gather_records(recs) is recs


@pytest.mark.filterwarnings("ignore:The ``compute`` method of metric ItemValues was called before")
def test_item_values_single_process():
    m = ItemValues()
    assert m.compute().numel() == 0
    m.update(torch.tensor([1.0, 2.0]))
    m.update(torch.tensor(3.0))
    assert m.compute().tolist() == [1.0, 2.0, 3.0]
    m.reset()
    assert m.compute().numel() == 0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, port: int, out_dir: str) -> None:
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    try:
        # a distributed sampler interleaves items: rank 0 gets 0, 2, 4 and rank 1 gets 1, 3
        mine = [{"_order": i, "v": float(10 * i)} for i in range(rank, 5, 2)]
        ordered = gather_records(mine)
        unordered = gather_records([{"rank": rank, "i": j} for j in range(rank + 1)])
        metric = ItemValues()
        for i in range(rank, 5, 2):
            metric.update(torch.tensor([float(i)]))
        values = metric.compute().tolist()
        only_rank0 = ItemValues()  # a rank that saw no items must not break the reduction
        if rank == 0:
            only_rank0.update(torch.tensor([7.0, 8.0]))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "compute before update" on rank 1 is the point
            values_rank0 = only_rank0.compute().tolist()
        try:
            gather_records([{"_order": 0}] if rank == 0 else [{"v": 1}])
            mixed = "no error"
        except ValueError as err:
            mixed = str(err)
        with CostTracker() as cost:
            pass
        result = {"ordered": ordered, "unordered": unordered, "values": values,
                  "values_rank0": values_rank0, "mixed": mixed,
                  "world_size": cost.as_dict()["world_size"]}
        with open(f"{out_dir}/rank{rank}.json", "w") as f:
            json.dump(result, f)
    finally:
        dist.destroy_process_group()


def test_two_process_gather(tmp_path):
    mp.spawn(_worker, args=(_free_port(), str(tmp_path)), nprocs=2, join=True)
    for rank in range(2):
        got = json.loads((tmp_path / f"rank{rank}.json").read_text())
        assert got["ordered"] == [{"_order": i, "v": float(10 * i)} for i in range(5)]
        # no "_order": plain rank-major concatenation
        assert got["unordered"] == [{"rank": 0, "i": 0}, {"rank": 1, "i": 0}, {"rank": 1, "i": 1}]
        # torchmetrics "cat" reduction: rank 0's items then rank 1's (uneven sizes)
        assert got["values"] == [0.0, 2.0, 4.0, 1.0, 3.0]
        assert got["values_rank0"] == [7.0, 8.0]
        assert "_order" in got["mixed"]
        assert got["world_size"] == 2
