"""The end-to-end demo (``make demo``). Filled in once the data and model pieces land."""
import sys

if __name__ == '__main__':
    sys.exit('The demo needs the toy dataset builder (tools/make_toy_faid.py) and the FCDFN model; '
             'they are not in this version yet. `make test` works.')
