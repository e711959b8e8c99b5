"""``import fcdfn_plugin`` registers every public piece under its own name."""
from basicsr.utils.registry import ARCH_REGISTRY, DATASET_REGISTRY, LOSS_REGISTRY, METRIC_REGISTRY, MODEL_REGISTRY

import fcdfn_plugin  # noqa: F401

# Every name the plugin registers. Grows as modules land; a missing name is a failure.
EXPECTED = {
    ARCH_REGISTRY: ['FCDFNArch', 'DeepFnFArch', 'LSD2Arch', 'DJFArch', 'CUNetArch', 'FRLArch', 'DSNArch'],
    DATASET_REGISTRY: ['FlashLowLightDataset'],
    LOSS_REGISTRY: ['FCDFNLoss', 'FCDFNSSIMLoss', 'FCDFNGradientLoss', 'DSNSumL2Loss'],
    METRIC_REGISTRY: ['calculate_fcdfn_lpips'],
    MODEL_REGISTRY: ['FCDFNModel', 'DSNModel'],
}


def test_plugin_names_registered():
    for registry, names in EXPECTED.items():
        for name in names:
            assert name in registry, f'{name} missing from {registry._name}'


def test_plugin_registers_only_expected_names():
    """Nothing registered by the plugin is missing from EXPECTED (keeps this list honest)."""
    for registry, names in EXPECTED.items():
        ours = {name for name, obj in registry._obj_map.items() if obj.__module__.startswith('fcdfn_plugin')}
        assert ours == set(names), f'{registry._name}: registered {sorted(ours)}, expected {sorted(names)}'
