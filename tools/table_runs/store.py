"""The committed records (one JSON file per finished run) and the identity of the test sets they were scored
on: a digest per preparation and a fingerprint that tells another machine's preparation of the same set from
another set."""
import datetime
import glob
import hashlib
import json
import os
from os import path as osp

import numpy as np


def load_records(folder):
    records = {}
    for path in sorted(glob.glob(osp.join(folder, '*.json'))):
        with open(path) as handle:
            records[osp.splitext(osp.basename(path))[0]] = json.load(handle)
    return records


def write_json(path, data):
    """``data`` as indented JSON, ending in a newline (records, parks, test sets, the tables)."""
    with open(path, 'w') as handle:
        json.dump(data, handle, indent=1)
        handle.write('\n')


def test_set_files(folder):
    """(name, path, image) for each file under a test folder, sorted: the name relative to it with '/', and a
    PNG's decoded pixels (None for other files and for a PNG that does not decode)."""
    import cv2
    for path in sorted(glob.glob(osp.join(folder, '**', '*'), recursive=True)):
        if osp.isfile(path):
            image = cv2.imread(path, cv2.IMREAD_UNCHANGED) if path.lower().endswith('.png') else None
            yield osp.relpath(path, folder).replace(os.sep, '/'), path, image


def test_set_digest(folder):
    """A digest of a test folder's contents (file names, decoded pixels, other files' bytes): a record keys its
    real scores by the folder's base name, and this tells two folders of the same name apart."""
    digest = hashlib.sha256()
    for name, path, image in test_set_files(folder):
        digest.update(name.encode())
        if image is not None:  # pixels, not the PNG's bytes: another encoder writes the same crops differently
            digest.update(image.tobytes())
        else:
            with open(path, 'rb') as handle:
                digest.update(handle.read())
    return digest.hexdigest()[:16]


TEST_SET_TOLERANCE = 1e-5  # largest difference of a projection (0-1 scale) between two preparations of one set
TEST_SET_PROJECTIONS = 8  # numbers per image in its fingerprint


def image_projections(image):
    """An image's mean (0-1 scale) and its means against 7 fixed pseudo-random +-1 patterns over its values (a
    hash of the value's index: the same on every machine). They move by the size of a change spread over the
    image, and carry no picture (no FAID crop is committed): the digest's tolerant counterpart."""
    values = image.astype(np.float64).ravel() / np.iinfo(image.dtype).max
    index = np.arange(values.size, dtype=np.uint64)
    projections = [values.mean()]
    for k in range(1, TEST_SET_PROJECTIONS):
        mixed = (index + np.uint64(k * 0x632BE59BD9B4E019 % 2**64)) * np.uint64(0x9E3779B97F4A7C15)  # wraps
        signs = 1.0 - 2.0 * ((mixed >> np.uint64(40)) & np.uint64(1)).astype(np.float64)
        projections.append((values * signs).mean())
    return [round(float(value), 9) for value in projections]


def test_set_fingerprint(folder):
    """What identifies a test folder across machines, where :func:`test_set_digest` tells bytes apart: per file,
    an image's shape and :func:`image_projections`, ``params.json``'s numbers, other files' sha256. The same
    preparation on another CPU differs in a few warped flash values (OpenCV dispatches ``warpPerspective`` by SIMD
    level: its AVX2 and SSE paths differ by up to 4 of 65535), which changes the digest but moves a projection by
    ~1e-7, inside :data:`TEST_SET_TOLERANCE`; another crop, scene or law does not."""
    files = {}
    for name, path, image in test_set_files(folder):
        if path.lower().endswith('.png'):
            if image is None:
                raise ValueError(f'{path}: not a readable PNG image')
            files[name] = {'shape': list(image.shape), 'projections': image_projections(image)}
        elif osp.basename(path) == 'params.json':
            with open(path) as handle:
                files[name] = {'params': json.load(handle)}
        else:
            with open(path, 'rb') as handle:
                files[name] = {'sha256': hashlib.sha256(handle.read()).hexdigest()}
    return files


def fingerprint_difference(expected, found):
    """None where two :func:`test_set_fingerprint` s are of one set, else the first difference, in words."""
    def numbers_differ(a, b):
        if isinstance(a, dict) and isinstance(b, dict):
            return a.keys() != b.keys() or any(numbers_differ(a[k], b[k]) for k in a)
        if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
            return not np.isclose(a, b, rtol=1e-9, atol=1e-12)
        return a != b

    if expected.keys() != found.keys():
        missing, extra = sorted(expected.keys() - found.keys()), sorted(found.keys() - expected.keys())
        return f'other files (missing: {", ".join(missing[:3]) or "none"}; extra: {", ".join(extra[:3]) or "none"})'
    for name in expected:
        a, b = expected[name], found[name]
        if 'projections' in a and 'projections' in b:
            if a['shape'] != b['shape']:
                return f'{name}: shape {b["shape"]}, not {a["shape"]}'
            gap = max(abs(x - y) for x, y in zip(a['projections'], b['projections']))
            if gap > TEST_SET_TOLERANCE:
                return f'{name}: its pixels differ (a projection by {gap:.2g}; tolerance {TEST_SET_TOLERANCE:g})'
        elif numbers_differ(a, b):
            return f'{name}: other contents'
    return None


def machine_note():
    """Which machine prepared a folder: its CPU (``fcdfn_plugin.utils.machine.cpu_note``) and the date."""
    from fcdfn_plugin.utils.machine import cpu_note

    return f'{cpu_note()}, {datetime.date.today().isoformat()}'


def test_set_file(records_dir, real_name=None):
    """Where a test set's fingerprint and digests are kept: ``test_sets/real_<name>.json`` for a real folder,
    ``test_sets/toy.json`` for the toy test set."""
    return osp.join(records_dir, 'test_sets', f'real_{real_name}.json' if real_name else 'toy.json')


def known_digests(path, folder, digest, write=True):
    """(digests, difference): the digests that are preparations of ``folder``'s set, and why the folder is not the
    set whose fingerprint is in ``path`` (None if it is). ``path`` (:func:`test_set_file`) is written on first use;
    a folder of a new digest whose fingerprint matches (the same preparation on another CPU) joins its digests, so
    records scored on any of them stay comparable."""
    if not osp.isfile(path):
        if write:
            os.makedirs(osp.dirname(path), exist_ok=True)
            write_json(path, {'fingerprint': test_set_fingerprint(folder), 'digests': {digest: machine_note()}})
            print(f'fingerprint of {folder} written to {path} (commit it with the records)')
        return {digest}, None
    with open(path) as handle:
        entry = json.load(handle)
    if digest in entry['digests']:
        return set(entry['digests']), None
    difference = fingerprint_difference(entry['fingerprint'], test_set_fingerprint(folder))
    if difference:
        return {digest}, f'its fingerprint is not the one in {path}: {difference}'
    if write:
        entry['digests'][digest] = machine_note()
        write_json(path, entry)
        print(f'{folder} is the set in {path} prepared on another machine (same fingerprint, digest {digest}): '
              'digest added (commit it with the records)')
    return set(entry['digests']) | {digest}, None


def real_set_name(folder):
    """The key of a real test folder's scores in a record: its base name (``test`` for ``.../faid_mini_c256/test``)."""
    return osp.basename(osp.normpath(folder))


def scored_elsewhere(records, real_name, digests):
    """The records whose scores on ``real_name`` were computed on another folder of that name (a digest not in
    ``digests``, the preparations of this folder's set); records from before digests were kept (none stored) are
    taken as they are."""
    return sorted(name for name, record in records.items() if real_name in record.get('real', {})
                  and record.get('real_digest', {}).get(real_name) not in {None, *digests})
