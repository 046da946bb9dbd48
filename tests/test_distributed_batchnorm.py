"""``distributed.GlobalBatchNorm``: two gloo processes, each with its chunk of a batch, normalise as one process
normalises the whole batch: outputs, input and parameter gradients (as DDP averages them, the loss scaled by
the world size as ``engine`` does) and running statistics equal ``torch.nn.BatchNorm2d`` on the whole batch.

Tolerance 1e-5 (float32): the statistics are sums of two partial sums (and the variance a two-pass sum about
the mean, where torch's kernel uses Welford's update), so they agree to rounding, not bit for bit. Plain
BatchNorm on each rank's chunk (what fine-tuning did before) differs by O(1) in the outputs, which this fails.
"""

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from egath_lite.pipeline.distributed import GlobalBatchNorm, chunk_of, gather_rows, global_batchnorm

N, C = 5, 3  # 5 rows: chunks of 3 and 2, unequal on purpose


def _batch():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(N, C, 4, 4, generator=g) * 3 + 1
    gy = torch.randn(N, C, 4, 4, generator=g)  # the loss is (y * gy).sum(): a gradient that is not uniform
    weight, bias = torch.rand(C, generator=g) + 0.5, torch.randn(C, generator=g)
    return x, gy, weight, bias


def _bn(weight, bias) -> torch.nn.BatchNorm2d:
    bn = torch.nn.BatchNorm2d(C, momentum=0.3)
    with torch.no_grad():
        bn.weight.copy_(weight)
        bn.bias.copy_(bias)
        bn.running_var.fill_(2.0)
    return bn


def _worker(rank: int, world: int, init: str, folder: str) -> None:
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
    try:
        x, gy, weight, bias = _batch()
        model = global_batchnorm(torch.nn.Sequential(_bn(weight, bias)))
        start, stop, sizes = chunk_of(N)
        mine = x[start:stop].clone().requires_grad_(True)
        y = gather_rows(model(mine), sizes)
        ((y * gy).sum() * world).backward()
        for p in model.parameters():  # what DDP does with the gradients
            dist.all_reduce(p.grad)
            p.grad /= world
        bn = model[0]
        model.eval()
        torch.save(
            dict(
                y=y.detach(),
                x_grad=mine.grad / world,
                w_grad=bn.weight.grad,
                b_grad=bn.bias.grad,
                mean=bn.running_mean,
                var=bn.running_var,
                tracked=bn.num_batches_tracked,
                eval_y=model(x).detach(),
                start=start,
                stop=stop,
                kind=type(bn).__name__,
            ),
            f"{folder}/rank{rank}.pt",
        )
    finally:
        dist.destroy_process_group()


def test_two_processes_normalise_as_one_over_the_whole_batch(tmp_path):
    x, gy, weight, bias = _batch()
    ref = _bn(weight, bias)
    xr = x.clone().requires_grad_(True)
    y_ref = ref(xr)
    (y_ref * gy).sum().backward()
    ref.eval()
    eval_ref = ref(x).detach()

    mp.spawn(_worker, args=(2, f"file://{tmp_path / 'rendezvous'}", str(tmp_path)), nprocs=2, join=True)
    tol = dict(rtol=1e-5, atol=1e-5)
    for rank in (0, 1):
        got = torch.load(tmp_path / f"rank{rank}.pt", weights_only=True)
        assert got["kind"] == "GlobalBatchNorm"
        assert torch.allclose(got["y"], y_ref.detach(), **tol)
        assert torch.allclose(got["x_grad"], xr.grad[got["start"] : got["stop"]], **tol)
        assert torch.allclose(got["w_grad"], ref.weight.grad, **tol)
        assert torch.allclose(got["b_grad"], ref.bias.grad, **tol)
        assert torch.allclose(got["mean"], ref.running_mean, **tol)
        assert torch.allclose(got["var"], ref.running_var, **tol)  # unbiased: n / (n - 1) with n = 5 * 4 * 4
        assert int(got["tracked"]) == 1
        assert torch.allclose(got["eval_y"], eval_ref, **tol)
    # the chunks' own statistics (plain BatchNorm per rank) are far from the whole batch's: the check has teeth
    chunk = _bn(weight, bias)(x[:3]).detach()
    assert (chunk - y_ref[:3].detach()).abs().max() > 0.1


def test_conversion_keeps_parameters_buffers_and_keys():
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.Sequential(torch.nn.BatchNorm1d(4))
    )
    model[1].running_mean.fill_(0.25)
    model[1].weight.requires_grad_(False)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model.eval()
    out = global_batchnorm(model)
    assert out is model
    assert isinstance(model[1], GlobalBatchNorm) and isinstance(model[2][0], GlobalBatchNorm)
    assert not model[1].training and not model[1].weight.requires_grad and model[1].bias.requires_grad
    after = model.state_dict()
    assert list(after) == list(before)
    for k, v in before.items():
        assert torch.equal(after[k], v), k
    # alone (no process group) it is torch's BatchNorm, in training too
    bn, ref = GlobalBatchNorm(4), torch.nn.BatchNorm2d(4)
    x = torch.randn(6, 4, 2, 2)
    assert torch.equal(bn(x), ref(x)) and torch.equal(bn.running_var, ref.running_var)
