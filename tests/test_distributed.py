"""`medxai.distributed`'s driven rounds on two real gloo processes: rank 0 makes the payloads
one round at a time, each rank computes its own, and the results come back in payload order."""

import os
import socket

import torch.multiprocessing as mp

from medxai import distributed


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _square_on_rank(offset: int, payload: int) -> tuple[int, int]:
    return distributed.rank(), payload * payload + offset


def _rank(rank: int, port: int, results: dict) -> None:
    import torch.distributed as dist

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    try:
        if rank == 0:
            made, rounds = [], []

            def payloads():
                for k in range(5):
                    made.append(k)
                    yield k

            def progress(done):
                rounds.append((len(made), len(done)))

            results["got"] = distributed.run_everywhere(
                distributed.dealt_rounds, _square_on_rank, 10, 5,
                local={"payloads": payloads(), "progress": progress},
            )  # fmt: skip
            results["rounds"] = rounds
            distributed.stop_serving()
        else:
            distributed.serve()
    finally:
        dist.destroy_process_group()


def test_payloads_are_dealt_a_round_at_a_time_and_come_back_in_order():
    results = mp.Manager().dict()
    mp.spawn(_rank, args=(_free_port(), results), nprocs=2, join=True)
    assert results["got"] == [(0, 10), (1, 11), (0, 14), (1, 19), (0, 26)]
    # two payloads made per round (only one in the last), never all five at once
    assert results["rounds"] == [(2, 2), (4, 2), (5, 1)]


def test_outside_torchrun_it_is_the_plain_loop():
    got = distributed.dealt_rounds(_square_on_rank, 1, 3, iter([2, 3, 4]))
    assert got == [(0, 5), (0, 10), (0, 17)]
