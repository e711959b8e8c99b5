"""Benchmarks, one argparse subcommand each.

    python tools/benchmark.py op [--size 224] [--batch 4] [--num-basis 90] [--kernel 15] [--repeat 3] [--rounds 2]
                                 [--device cpu|cuda] [--impls native banded conv naive fused]
    python tools/benchmark.py init [--arch FCDFNArch] [--base-channels 16 --depth 3 --num-basis 16]
    python tools/benchmark.py model [--base-channels 16 --depth 3 --num-basis 16] [--megapixels 1 12] [--json out.json]
                                    [--device cpu|cuda] [--amp bf16|fp16|none]
                                    [--filter-impl auto|banded|fused|native ...]
    python tools/benchmark.py dist [--iters 60] [--batch 16]
    python tools/benchmark.py step -opt options/table1/*_small.yml [--batch 8] [--crop 64] [--repeat 3] [--rounds 1]
                                   [--amp bf16] [--filter-impl banded native] [--channels-last off on]
    python tools/benchmark.py data [-opt options/fcdfn_demo.yml] [--samples 200]

``op``: time and peak resident memory above the inputs of one forward+backward of ``basis_filter``
(banded, the kept design), ``basis_filter_conv`` (design (a)) and a naive unfold filter, each in its
own process so one's allocations cannot hide another's peak. Time is the minimum over repeats and
alternating rounds (the machine may be shared); memory is VmHWM minus VmRSS after the inputs exist and the code paths
were warmed up on a tiny problem (so loading libraries is not counted). Linux only (/proc).
``--device cuda`` times with synchronisation after one untimed step at the full size (Triton compiles
``fused`` for it) and reports ``torch.cuda.max_memory_allocated`` above the inputs; ``fused`` (the
Triton kernel, ``basis_filter(impl='fused')``) runs on CUDA only (default impls there: fused, banded,
naive). Without a visible GPU ``--device cuda`` stops with an error.

``model``: (1) one training step (forward, FCDFNLoss, backward, Adam) of FCDFNArch and DeepFnFArch at the
same backbone width, and their ratio (``--amp bf16|fp16``: the forward under autocast, the loss in float32,
fp16 with a GradScaler, as ``train.amp`` of FCDFNModel; ``--filter-impl``: the archs' ``filter_impl``);
(2) inference of FCDFNArch per megapixel on 4:3 pairs of each ``--megapixels`` size, tiled (two passes, see
``FCDFNModel``), with the peak memory above the inputs (resident memory on CPU,
``torch.cuda.max_memory_allocated`` on CUDA). Each measurement runs in its own process (``--megapixels``
with no value skips inference). ``--json`` writes everything.

``dist``: training throughput of ``options/fcdfn_demo.yml`` on the toy FAID (built if missing) with
one process and a batch of ``--batch`` against ``torchrun`` with two processes of half that batch
(Gloo on CPU, NCCL on GPU): the same samples per iteration, so the ratio of samples per second is
the distributed speed-up. Times are BasicSR's own averaged iteration times from the logs.

``data``: time per training sample of the options file's ``datasets.train`` (one process, one thread, as a
data-loader worker): first without the decoded-image cache (every read decodes), then with it, reading the
same scenes again in the next epoch (what a training run does from its second epoch on). Builds nothing:
the dataset must exist (``make demo`` or ``tools/prepare_faid.py``).

``step``: one training step of the BasicSR model each options file describes (its ``model_type``,
``network_g`` and ``train`` section: forward, every loss, backward, gradient clipping, the optimiser)
on a random batch (with noise sigmas, for networks that take them), no data loading; each file in
its own process (``--rounds`` processes per file, alternating). Reports the median and minimum over
``--repeat`` steps after ``--warmup`` steps (and the minimum over rounds), and
the peak memory of the process (resident memory on CPU, ``torch.cuda.max_memory_allocated`` on CUDA).
"""
import argparse
import json
import os
import subprocess
import sys
import time

IMPLEMENTATIONS = ('banded', 'conv', 'naive', 'fused', 'native')
#: Implementations ``op`` runs when ``--impls`` is not given, per device.
DEFAULT_IMPLS = {'cpu': ('native', 'banded', 'conv', 'naive'), 'cuda': ('fused', 'banded', 'naive')}
FILTER_IMPL_CHOICES = ('auto', 'banded', 'fused', 'native')
AMP_CHOICES = ('none', 'bf16', 'fp16')


def check_device(device):
    """Stop with a clear message when ``device`` is cuda and no GPU is visible."""
    import torch
    if device == 'cuda' and not torch.cuda.is_available():
        raise SystemExit('--device cuda: no CUDA GPU is visible here (torch.cuda.is_available() is False); '
                         'run on a machine with a GPU, or use --device cpu')


def naive_unfold_filter(image, coeffs, basis, bias, dilation=1, padding_mode='reflect'):
    """The obvious version: every per-pixel kernel and the whole image unfolded at once."""
    import torch.nn.functional as F
    from fcdfn_plugin.ops import pad_image
    batch, channels, height, width = image.shape
    num_basis, size = basis.shape[1], basis.shape[-1]
    padded = pad_image(image, dilation * (size - 1) // 2, padding_mode)
    cols = F.unfold(padded, size, dilation=dilation).view(batch, channels, size * size, height * width)
    kernels = basis.reshape(batch, num_basis, -1).transpose(1, 2) @ coeffs.reshape(batch, num_basis, -1)
    kernels = kernels + bias.reshape(batch, 1, -1)
    return (cols * kernels.unsqueeze(1)).sum(2).view(batch, channels, height, width)


def _status_mb(key):
    with open('/proc/self/status') as status:
        for line in status:
            if line.startswith(key):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f'{key} not in /proc/self/status')


def op_worker(args):
    """Runs in its own process; prints one JSON line."""
    import functools

    import torch
    from fcdfn_plugin.ops import basis_filter, basis_filter_conv
    fn = {'banded': functools.partial(basis_filter, impl='banded'),
          'fused': functools.partial(basis_filter, impl='fused'),
          'native': functools.partial(basis_filter, impl='native'),
          'conv': basis_filter_conv, 'naive': naive_unfold_filter}[args.worker]
    device = torch.device(args.device)
    cuda = device.type == 'cuda'
    sync = torch.cuda.synchronize if cuda else (lambda: None)

    def make(batch, size, seed):
        gen = torch.Generator().manual_seed(seed)
        k, n = args.kernel, args.num_basis
        return [t.to(device).requires_grad_() for t in (
            torch.rand(batch, 3, size, size, generator=gen), torch.randn(batch, n, size, size, generator=gen) / n**0.5,
            torch.randn(batch, n, k, k, generator=gen) / k, torch.rand(batch, 1, size, size, generator=gen) / k**2)]

    def step(inputs):
        for tensor in inputs:
            tensor.grad = None
        fn(*inputs).square().mean().backward()
        sync()

    if cuda:  # warm-up at the full size: Triton specialises its kernels on the sizes
        inputs = make(args.batch, args.size, 0)
        step(inputs)
        for tensor in inputs:
            tensor.grad = None
        torch.cuda.reset_peak_memory_stats()
        baseline = torch.cuda.memory_allocated() / 2**20
    else:
        step(make(1, 2 * args.kernel, 1))  # warm-up: load code paths and thread pools
        inputs = make(args.batch, args.size, 0)
        baseline = _status_mb('VmRSS')
    times = []
    for _ in range(args.repeat):
        start = time.perf_counter()
        step(inputs)
        times.append(time.perf_counter() - start)
    peak = torch.cuda.max_memory_allocated() / 2**20 if cuda else _status_mb('VmHWM')
    print(json.dumps({'impl': args.worker, 'device': args.device, 'seconds': min(times), 'all_seconds': times,
                      'peak_above_inputs_mb': peak - baseline}))


def op_command(args):
    import torch
    check_device(args.device)
    args.impls = args.impls or list(DEFAULT_IMPLS[args.device])
    if 'fused' in args.impls and args.device != 'cuda':
        raise SystemExit("--impls fused needs --device cuda (on CPU the Triton kernel only runs in Triton's "
                         'interpreter, for tests, not for timing)')
    results = {}
    # Rounds alternate the implementations, so a burst of load from other jobs on a shared machine
    # hits one round of each rather than all repeats of one. Reported: the best time and the
    # largest peak over the rounds.
    for _ in range(args.rounds):
        for impl in args.impls:
            command = [sys.executable, os.path.abspath(__file__), 'op', '--worker', impl, '--size', str(args.size),
                       '--batch', str(args.batch), '--num-basis', str(args.num_basis), '--kernel', str(args.kernel),
                       '--repeat', str(args.repeat), '--device', args.device]
            done = subprocess.run(command, capture_output=True, text=True)
            if done.returncode != 0:
                raise SystemExit(f'{impl} failed (exit {done.returncode}):\n{done.stderr[-2000:]}')
            result = json.loads(done.stdout.strip().splitlines()[-1])
            best = results.setdefault(impl, result)  # best time, worst (largest) peak memory
            best['seconds'] = min(best['seconds'], result['seconds'])
            best['peak_above_inputs_mb'] = max(best['peak_above_inputs_mb'], result['peak_above_inputs_mb'])
    where = torch.cuda.get_device_name() if args.device == 'cuda' else f'{torch.get_num_threads()} threads'
    print(f'basis filter, forward+backward, B={args.batch} C=3 N={args.num_basis} K={args.kernel} '
          f'{args.size}x{args.size}, {where}, '
          f'min of {args.repeat} repeats x {args.rounds} alternating rounds')
    print(f'{"impl":8s} {"seconds":>8s} {"peak MB":>9s} {"naive/impl time":>16s} {"naive/impl memory":>18s}')
    naive = results.get('naive')
    for impl, result in results.items():
        ratios = ''
        if naive:
            ratios = (f'{naive["seconds"] / result["seconds"]:16.2f} '
                      f'{naive["peak_above_inputs_mb"] / max(result["peak_above_inputs_mb"], 1e-9):18.1f}')
        print(f'{impl:8s} {result["seconds"]:8.3f} {result["peak_above_inputs_mb"]:9.1f} {ratios}')


def init_command(args):
    """Untrained network on synthesized dark/flash pairs: first-iteration loss vs the bright target,
    and the time of one training step (forward + backward + Adam) at each size."""
    import numpy as np
    import torch

    import fcdfn_plugin  # noqa: F401  (first: patches BasicSR, registers the archs)
    from basicsr.utils.registry import ARCH_REGISTRY
    from fcdfn_plugin.data.degradation import degrade_window
    from fcdfn_plugin.data.toy_scenes import render_dead_leaves
    from fcdfn_plugin.losses.fcdfn_loss import FCDFNLoss

    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    options = dict(base_channels=args.base_channels, depth=args.depth, num_basis=args.num_basis)
    net = ARCH_REGISTRY.get(args.arch)(**options)
    loss_fn = FCDFNLoss()
    triplets = []
    for _ in range(args.batch):  # paper degradation (SPEC Sec. 2) of procedural toy scenes
        ambient, flash_only = render_dead_leaves(rng, size=args.sizes[-1] + 16)
        lq, flash, gt, _ = degrade_window(ambient, flash_only, 8, rng)
        triplets.append([torch.from_numpy(np.ascontiguousarray(x)).permute(2, 0, 1) for x in (lq, flash, gt)])
    lq, flash, gt = (torch.stack(group) for group in zip(*triplets))
    with torch.no_grad():
        out = net(lq, flash)
    print(f'{args.arch} {options}, {args.batch} toy scenes {lq.shape[-1]}px, untrained:')
    print(f'  mean lq {lq.mean():.3f}  flash {flash.mean():.3f}  output {out.mean():.3f}  gt {gt.mean():.3f}')
    print(f'  MSE(lq, gt) {torch.mean((lq - gt)**2):.4f}   MSE(output, gt) {torch.mean((out - gt)**2):.4f}')
    print(f'  FCDFNLoss(lq, gt) {loss_fn(lq, gt):.4f}   FCDFNLoss(output, gt) {loss_fn(out, gt):.4f}   '
          f'finite: {bool(torch.isfinite(out).all())}')
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-4)
    for size in args.sizes:
        batch = [t[..., :size, :size] for t in (lq, flash, gt)]
        times = []
        for _ in range(args.repeat + 1):  # the first step warms up
            start = time.perf_counter()
            optimizer.zero_grad()
            loss_fn(net(batch[0], batch[1]), batch[2]).backward()
            optimizer.step()
            times.append(time.perf_counter() - start)
        print(f'  train step B={args.batch} {size}x{size}: {min(times[1:]):.3f} s (min of {args.repeat}, '
              f'{torch.get_num_threads()} threads)')


def _model_options(args):
    """Backbone options shared by both archs (equal width, depth and N; each keeps its kernel defaults)."""
    impl = args.filter_impl[0] if isinstance(args.filter_impl, list) else args.filter_impl
    return dict(base_channels=args.base_channels, depth=args.depth, num_basis=args.num_basis, filter_impl=impl)


def model_worker(args):
    """Runs in its own process; prints one JSON line for ``--worker train-<Arch>`` or ``infer``."""
    import torch

    import fcdfn_plugin  # noqa: F401
    from basicsr.utils.registry import ARCH_REGISTRY
    from fcdfn_plugin.losses.fcdfn_loss import FCDFNLoss
    from fcdfn_plugin.models.fcdfn_model import AMP_DTYPES, enhance_pair

    device = torch.device(args.device)
    torch.manual_seed(0)
    sync = torch.cuda.synchronize if device.type == 'cuda' else (lambda: None)
    if args.worker.startswith('train-'):
        arch = args.worker[len('train-'):]
        net = ARCH_REGISTRY.get(arch)(**_model_options(args)).to(device)
        loss_fn, optimizer = FCDFNLoss(), torch.optim.Adam(net.parameters(), lr=1e-4)
        amp_dtype = AMP_DTYPES.get(args.amp)
        scaler = torch.amp.GradScaler(device.type) if args.amp == 'fp16' else None
        lq, flash, gt = (torch.rand(args.batch, 3, args.size, args.size, device=device) for _ in range(3))
        times = []
        for _ in range(args.repeat + 1):  # the first step warms up
            sync()
            start = time.perf_counter()
            optimizer.zero_grad()
            with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                out = net(lq * 0.2, flash)
            loss = loss_fn(out.float(), gt)  # as FCDFNModel with train.amp: the loss in float32
            if scaler is None:
                loss.backward()
                optimizer.step()
            else:
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
            sync()
            times.append(time.perf_counter() - start)
        peak = torch.cuda.max_memory_allocated() / 2**20 if device.type == 'cuda' else _status_mb('VmHWM')
        print(json.dumps({'arch': arch, 'seconds': min(times[1:]), 'params': sum(p.numel() for p in net.parameters()),
                          'amp': args.amp, 'peak_memory_mb': peak}))
        return
    net = ARCH_REGISTRY.get('FCDFNArch')(**_model_options(args)).to(device).eval()
    width = int(round((args.mp * 1e6 * 4 / 3) ** 0.5))
    height = int(round(args.mp * 1e6 / width))
    small = [torch.rand(1, 3, 2 * args.tile, 2 * args.tile, device=device) for _ in range(2)]
    enhance_pair(net, *small, size=args.tile, overlap=args.overlap, min_pixels=0)  # warm-up, tiled code path
    lq, flash = (torch.rand(1, 3, height, width, device=device) for _ in range(2))
    if device.type == 'cuda':
        sync()
        torch.cuda.reset_peak_memory_stats()
        baseline = torch.cuda.memory_allocated()
    else:
        baseline = _status_mb('VmRSS')
    start = time.perf_counter()
    out = enhance_pair(net, lq, flash, size=args.tile, overlap=args.overlap, min_pixels=0)
    sync()
    seconds = time.perf_counter() - start
    peak = ((torch.cuda.max_memory_allocated() - baseline) / 2**20 if device.type == 'cuda'
            else _status_mb('VmHWM') - baseline)
    print(json.dumps({'megapixels': height * width / 1e6, 'size': [height, width], 'seconds': seconds,
                      'seconds_per_mp': seconds / (height * width / 1e6), 'peak_above_inputs_mb': peak,
                      'finite': bool(torch.isfinite(out).all())}))


def model_command(args):
    check_device(args.device)
    if 'fused' in args.filter_impl and args.device != 'cuda':
        raise SystemExit('--filter-impl fused needs --device cuda')
    impls = args.filter_impl

    def run(worker, impl, extra=()):
        command = [sys.executable, os.path.abspath(__file__), 'model', '--worker', worker, '--device', args.device,
                   '--amp', args.amp, '--filter-impl', impl,
                   '--base-channels', str(args.base_channels), '--depth', str(args.depth),
                   '--num-basis', str(args.num_basis), '--batch', str(args.batch), '--size', str(args.size),
                   '--repeat', str(args.repeat), '--tile', str(args.tile), '--overlap', str(args.overlap), *extra]
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f'{worker} failed (exit {done.returncode}):\n{done.stderr[-2000:]}')
        return json.loads(done.stdout.strip().splitlines()[-1])

    # Several --filter-impl values: every measurement runs for each impl in turn (a busy spell on a shared
    # machine hits all of them), one report per impl.
    reports = {impl: {'device': args.device, 'amp': args.amp, 'filter_impl': impl,
                      'options': dict(_model_options(args), filter_impl=impl), 'train': {}, 'inference': []}
               for impl in impls}
    for arch in ('FCDFNArch', 'DeepFnFArch'):
        for impl in impls:
            result = reports[impl]['train'][arch] = run(f'train-{arch}', impl)
            print(f'train step {arch:12s} B={args.batch} {args.size}x{args.size} amp {args.amp} filter {impl}: '
                  f'{result["seconds"]:.3f} s ({result["params"]:,} parameters, peak memory '
                  f'{result["peak_memory_mb"]:.0f} MB)', flush=True)
    for impl, report in reports.items():
        ratio = report['train']['FCDFNArch']['seconds'] / report['train']['DeepFnFArch']['seconds']
        report['train_ratio_fcdfn_over_deepfnf'] = ratio
        print(f'filter {impl}: FCDFN step / DeepFnF step: {ratio:.2f}', flush=True)
    for mp in args.megapixels:
        for impl in impls:
            result = run('infer', impl, ['--mp', str(mp)])
            reports[impl]['inference'].append(result)
            print(f'inference {result["size"][1]}x{result["size"][0]} ({result["megapixels"]:.1f} MP), filter {impl}, '
                  f'tiles {args.tile}/{args.overlap}: {result["seconds"]:.1f} s = {result["seconds_per_mp"]:.2f} s/MP, '
                  f'peak above inputs {result["peak_above_inputs_mb"]:.0f} MB', flush=True)
    for impl, report in reports.items():
        if len(report['inference']) > 1:
            first, last = report['inference'][0], report['inference'][-1]
            report['time_per_mp_ratio_largest_over_smallest'] = last['seconds_per_mp'] / first['seconds_per_mp']
            print(f'filter {impl}: time per MP, {last["megapixels"]:.1f} MP / {first["megapixels"]:.1f} MP: '
                  f'{report["time_per_mp_ratio_largest_over_smallest"]:.2f}')
    base = reports[impls[0]]
    for impl in impls[1:]:  # the first impl against each other one
        ratio = base['train']['FCDFNArch']['seconds'] / reports[impl]['train']['FCDFNArch']['seconds']
        print(f'train step FCDFNArch: {impls[0]} / {impl} time: {ratio:.2f}')
        for old, new in zip(base['inference'], reports[impl]['inference']):
            print(f'inference {old["megapixels"]:.1f} MP: {impls[0]} / {impl} '
                  f'time: {old["seconds"] / new["seconds"]:.2f}, '
                  f'memory {old["peak_above_inputs_mb"]:.0f} -> {new["peak_above_inputs_mb"]:.0f} MB')
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(reports[impls[0]] if len(impls) == 1 else reports, f, indent=1)


def dist_command(args):
    import re
    import tempfile

    import yaml

    import fcdfn_plugin  # noqa: F401
    from fcdfn_plugin.utils.pipeline import ensure_toy_dataset, run_step

    prepared = ensure_toy_dataset()
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with open(os.path.join(repo, 'options', 'fcdfn_demo.yml')) as f:
        base = yaml.safe_load(f)
    results = {}
    with tempfile.TemporaryDirectory() as root:
        for processes in (1, 2):
            opt = dict(base, name=f'dist_{processes}')
            opt['datasets']['train'].update(dataroot=os.path.join(prepared, 'train.lmdb'),
                                            batch_size_per_gpu=args.batch // processes)
            opt['datasets']['val']['dataroot'] = os.path.join(prepared, 'test')
            opt['train']['total_iter'] = args.iters
            opt['val']['val_freq'] = 10 * args.iters
            opt['logger'].update(print_freq=args.iters // 2, save_checkpoint_freq=10 * args.iters)
            options = os.path.join(root, f'dist_{processes}.yml')
            with open(options, 'w') as f:
                yaml.safe_dump(opt, f, sort_keys=False)
            command = ['tools/train.py', '-opt', options]
            if processes > 1:
                command = ['-m', 'torch.distributed.run', '--standalone', f'--nproc_per_node={processes}'] + command + [
                    '--launcher', 'pytorch']
            run_step(f'{processes} process(es), batch {args.batch // processes} each', command,
                     env_extra={'FCDFN_ROOT': root})
            log_path = next(os.path.join(root, 'experiments', opt['name'], name)
                            for name in os.listdir(os.path.join(root, 'experiments', opt['name']))
                            if name.endswith('.log'))
            # BasicSR's AvgTimer: the mean iteration time since the start (at most 200 iterations)
            seconds = float(re.findall(r'time \(data\): ([\d.]+)', open(log_path).read())[-1])
            results[processes] = {'seconds_per_iter': seconds, 'samples_per_s': args.batch / seconds}
    ratio = results[2]['samples_per_s'] / results[1]['samples_per_s']
    for processes, result in results.items():
        print(f'{processes} process(es): {result["seconds_per_iter"]:.3f} s/iteration, '
              f'{result["samples_per_s"]:.1f} samples/s')
    print(f'2 processes / 1 process throughput: {ratio:.2f}')


def data_command(args):
    import copy

    import torch
    import yaml

    import fcdfn_plugin  # noqa: F401
    from basicsr.data import build_dataset

    with open(args.opt) as handle:
        dataset_opt = yaml.safe_load(handle)['datasets']['train']
    dataset_opt.update(phase='train', scale=1)
    torch.set_num_threads(1)
    results = {}
    for label, cache_mb in (('decoded every read', 0), ('decoded-image cache', None)):
        opt = copy.deepcopy(dataset_opt)
        if cache_mb is not None:
            opt['decoded_cache_mb'] = cache_mb
        dataset = build_dataset(opt)
        count = min(args.samples, len(dataset))
        for index in range(count):  # epoch 0: fills the cache, if any
            dataset[(0, index)]
        start = time.perf_counter()
        for index in range(count):  # epoch 1: the same scenes, new crops and noise
            dataset[(1, index)]
        results[label] = (time.perf_counter() - start) / count
        print(f'{args.opt} datasets.train, {label}: {1e3 * results[label]:.2f} ms per sample '
              f'(mean of {count}, one thread)', flush=True)
    print(f'cache speed-up: {results["decoded every read"] / results["decoded-image cache"]:.2f}x', flush=True)


def step_worker(args):
    """Runs in its own process; prints one JSON line for the options file ``args.opt[0]``."""
    import statistics

    import torch
    import yaml

    import fcdfn_plugin  # noqa: F401
    from basicsr.models import build_model

    with open(args.opt[0]) as handle:
        opt = yaml.safe_load(handle)
    cuda = args.device == 'cuda'
    if args.amp is not None:
        opt['train']['amp'] = None if args.amp == 'none' else args.amp
    if args.filter_impl:
        opt['network_g']['filter_impl'] = args.filter_impl[0]
    if args.channels_last:
        opt['train']['channels_last'] = args.channels_last[0] == 'on'
    opt.update(is_train=True, dist=False, rank=0, world_size=1, num_gpu=1 if cuda else 0)
    opt['path'] = {key: value for key, value in (opt.get('path') or {}).items() if key != 'resume_state'}
    opt['path']['pretrain_network_g'] = None
    torch.manual_seed(0)
    model = build_model(opt)
    generator = torch.Generator().manual_seed(0)
    shape = (args.batch, 3, args.crop, args.crop)
    batch = {'lq': torch.rand(shape, generator=generator) * 0.2, 'flash': torch.rand(shape, generator=generator),
             'gt': torch.rand(shape, generator=generator),
             'params': {'sigma_read': torch.full((args.batch,), 5e-3), 'sigma_shot': torch.full((args.batch,), 3e-2)}}
    model.feed_data(batch)
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    times = []
    for index in range(args.warmup + args.repeat):
        sync()
        start = time.perf_counter()
        model.optimize_parameters(index + 1)
        sync()
        times.append(time.perf_counter() - start)
    timed = times[args.warmup:]
    net = model.get_bare_model(model.net_g)
    print(json.dumps({'options': args.opt[0], 'network': opt['network_g']['type'], 'batch': args.batch,
                      'filter_impl': opt['network_g'].get('filter_impl', 'auto'),
                      'channels_last': bool(opt['train'].get('channels_last', False)),
                      'crop': args.crop, 'median_seconds': statistics.median(timed), 'min_seconds': min(timed),
                      'seconds': timed, 'warmup_seconds': times[:args.warmup],
                      'params': sum(p.numel() for p in net.parameters()),
                      'peak_memory_mb': (torch.cuda.max_memory_allocated() / 2**20 if cuda else _status_mb('VmHWM'))}))


def step_command(args):
    check_device(args.device)
    # variants: every (filter impl, channels-last) pair asked for; None: as the options file says
    variants = [(impl, layout) for impl in (args.filter_impl or [None]) for layout in (args.channels_last or [None])]
    runs = {(path, variant): [] for path in args.opt for variant in variants}

    def label(variant):
        impl, layout = variant
        return ' '.join(part for part in (impl and f'filter {impl}', layout and f'channels-last {layout}') if part) \
            or 'as configured'

    for round_index in range(args.rounds):  # files alternate, so a busy spell on a shared machine hits them all
        for path, variant in runs:
            impl, layout = variant
            command = [sys.executable, os.path.abspath(__file__), 'step', '--worker', '-opt', path,
                       '--batch', str(args.batch), '--crop', str(args.crop), '--repeat', str(args.repeat),
                       '--warmup', str(args.warmup), '--device', args.device] + (
                           ['--amp', args.amp] if args.amp else []) + (['--filter-impl', impl] if impl else []) + (
                           ['--channels-last', layout] if layout else [])
            done = subprocess.run(command, capture_output=True, text=True)
            if done.returncode != 0:
                raise SystemExit(f'{path} failed (exit {done.returncode}; -9: out of memory?):\n{done.stderr[-2000:]}')
            result = json.loads(done.stdout.strip().splitlines()[-1])
            runs[path, variant].append(result)
            print(f'[round {round_index + 1}/{args.rounds}] {path} ({label(variant)}; filter {result["filter_impl"]}): '
                  f'{result["network"]} B={args.batch} {args.crop}x{args.crop}: '
                  f'median {result["median_seconds"]:.3f} s, '
                  f'min {result["min_seconds"]:.3f} s '
                  f'per step over {args.repeat} ({result["params"]:,} parameters, peak memory '
                  f'{result["peak_memory_mb"]:.0f} MB)', flush=True)
    results = []
    for (path, variant), path_runs in runs.items():
        best = min(run['min_seconds'] for run in path_runs)
        results.append({**path_runs[0], 'min_seconds': best, 'runs': path_runs})
        if args.rounds > 1:
            print(f'{path} ({label(variant)}): min over {args.rounds} rounds {best:.3f} s per step', flush=True)
    if len(variants) > 1:  # the first variant against each other one, per file
        for path in args.opt:
            base = min(run['min_seconds'] for run in runs[path, variants[0]])
            for variant in variants[1:]:
                print(f'{path}: ({label(variants[0])}) / ({label(variant)}) step time (min): '
                      f'{base / min(run["min_seconds"] for run in runs[path, variant]):.2f}', flush=True)
    if args.json:
        with open(args.json, 'w') as handle:
            json.dump(results, handle, indent=1)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest='command', required=True)
    op = commands.add_parser('op', help='basis_filter vs naive unfold: time and peak memory, forward+backward')
    op.add_argument('--size', type=int, default=224, help='square image side (224; 1024 for 1 MP)')
    op.add_argument('--batch', type=int, default=4)
    op.add_argument('--num-basis', type=int, default=90)
    op.add_argument('--kernel', type=int, default=15)
    op.add_argument('--repeat', type=int, default=3, help='timed runs per process')
    op.add_argument('--rounds', type=int, default=2, help='processes per implementation, alternating')
    op.add_argument('--impls', '--impl', nargs='+', choices=IMPLEMENTATIONS, default=None,
                    help='default: banded conv naive on cpu, fused banded naive on cuda (fused: cuda only)')
    op.add_argument('--device', default='cpu', choices=('cpu', 'cuda'))
    op.add_argument('--worker', choices=IMPLEMENTATIONS, help=argparse.SUPPRESS)
    init = commands.add_parser('init', help='untrained network: first loss on dark inputs, train-step time')
    init.add_argument('--arch', default='FCDFNArch', choices=('FCDFNArch', 'DeepFnFArch'))
    init.add_argument('--base-channels', type=int, default=16)
    init.add_argument('--depth', type=int, default=3)
    init.add_argument('--num-basis', type=int, default=16)
    init.add_argument('--batch', type=int, default=4)
    init.add_argument('--sizes', type=int, nargs='+', default=[128, 224])
    init.add_argument('--repeat', type=int, default=3)
    init.add_argument('--seed', type=int, default=0)
    model = commands.add_parser('model', help='FCDFN vs DeepFnF train step; tiled inference time and memory per MP')
    model.add_argument('--base-channels', type=int, default=16)
    model.add_argument('--depth', type=int, default=3)
    model.add_argument('--num-basis', type=int, default=16)
    model.add_argument('--batch', type=int, default=4, help='train-step batch')
    model.add_argument('--size', type=int, default=128, help='train-step crop')
    model.add_argument('--repeat', type=int, default=3)
    model.add_argument('--megapixels', type=float, nargs='*', default=[1, 12], help='none: no inference runs')
    model.add_argument('--tile', type=int, default=512)
    model.add_argument('--overlap', type=int, default=64)
    model.add_argument('--device', default='cpu', choices=('cpu', 'cuda'))
    model.add_argument('--amp', default='none', choices=AMP_CHOICES, help='autocast of the training forward')
    model.add_argument('--filter-impl', nargs='+', default=['auto'], choices=FILTER_IMPL_CHOICES,
                       help="the archs' filter_impl (fused: cuda only); several: each measured in turn")
    model.add_argument('--json', default=None, help='write the results here')
    model.add_argument('--worker', help=argparse.SUPPRESS)
    model.add_argument('--mp', type=float, help=argparse.SUPPRESS)
    dist = commands.add_parser('dist', help='1 process vs 2 (torchrun) training throughput on the demo options')
    dist.add_argument('--iters', type=int, default=60)
    dist.add_argument('--batch', type=int, default=16, help='samples per iteration (split over the processes)')
    step = commands.add_parser('step', help='train-step time of the model of each options file')
    step.add_argument('-opt', nargs='+', required=True, help='BasicSR training options files')
    step.add_argument('--batch', type=int, default=8)
    step.add_argument('--crop', type=int, default=64)
    step.add_argument('--repeat', type=int, default=3, help='timed steps')
    step.add_argument('--warmup', type=int, default=1, help='untimed steps first')
    step.add_argument('--rounds', type=int, default=1, help='processes per file, alternating between files')
    step.add_argument('--device', default='cpu', choices=('cpu', 'cuda'))
    step.add_argument('--amp', default=None, choices=AMP_CHOICES, help="override the options' train.amp")
    step.add_argument('--filter-impl', nargs='+', default=None, choices=FILTER_IMPL_CHOICES,
                      help="override network_g.filter_impl; several: each file runs with each, alternating")
    step.add_argument('--channels-last', nargs='+', default=None, choices=('off', 'on'),
                      help="override train.channels_last; with --filter-impl, every pair is a variant")
    step.add_argument('--json', default=None, help='write the results here')
    step.add_argument('--worker', action='store_true', help=argparse.SUPPRESS)
    data = commands.add_parser('data', help='time per training sample, with and without the decoded-image cache')
    data.add_argument('-opt', default='options/fcdfn_demo.yml', help='options file whose datasets.train is read')
    data.add_argument('--samples', type=int, default=200)
    args = parser.parse_args(argv)
    if args.command == 'data':
        data_command(args)
    elif args.command == 'step':
        step_worker(args) if args.worker else step_command(args)
    elif args.command == 'dist':
        dist_command(args)
    elif args.command == 'model':
        model_worker(args) if args.worker else model_command(args)
    elif args.command == 'op':
        op_worker(args) if args.worker else op_command(args)
    elif args.command == 'init':
        init_command(args)


if __name__ == '__main__':
    main()
