"""What a run ran on: the CPU (model and widest SIMD) and GPUs, for its log and its record.

The same training runs 2-4x slower on one CPU than on another, and OpenCV and oneDNN pick their
kernels by SIMD level, so a log or a timing without its machine cannot be compared.
"""
import os
import platform
import re

#: The CPU line :func:`machine_info` adds to a BasicSR log, as :func:`logged_cpu` reads it back.
_LOGGED_CPU = re.compile(r'^\s*CPU: (.*) \(\d+ logical cores')


def cpu_note():
    """This machine's CPU: its model and widest SIMD (what OpenCV and oneDNN dispatch on), e.g. 'AMD EPYC, avx2'."""
    from fcdfn_plugin.ops.basis_filter_native import cpu_flags

    model = platform.processor() or platform.machine()
    if os.path.isfile('/proc/cpuinfo'):
        with open('/proc/cpuinfo') as handle:
            model = next((line.partition(':')[2].strip() for line in handle if line.startswith('model name')), model)
    flags = set(cpu_flags().partition(':')[2].split())
    simd = next((f for f in ('avx512f', 'avx2', 'avx', 'neon', 'asimd') if f in flags), 'unknown SIMD')
    return f'{model}, {simd}'


def machine_info():
    """Lines for BasicSR's environment banner: the CPU, its cores and torch's threads, and each GPU."""
    import torch

    lines = [f'\n\tCPU: {cpu_note()} ({os.cpu_count()} logical cores, {torch.get_num_threads()} torch threads)']
    if torch.cuda.is_available():
        lines += [f'\n\tGPU {i}: {torch.cuda.get_device_name(i)}' for i in range(torch.cuda.device_count())]
    return ''.join(lines)


def logged_cpu(log_path):
    """The CPU a BasicSR log names (:func:`machine_info`), or None for a log written without it."""
    with open(log_path, encoding='utf-8') as handle:
        for line in handle:
            match = _LOGGED_CPU.match(line)
            if match:
                return match.group(1)
    return None
