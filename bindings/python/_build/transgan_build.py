"""A minimal in-tree PEP 517 / PEP 660 build backend, standard library only.

The bindings are pure Python, so building them needs nothing but zipfile:
pyproject.toml declares ``requires = []`` and points pip here
(``backend-path``), and ``pip install ./bindings/python`` works offline,
with or without build isolation. The metadata comes from pyproject.toml's
[project] table.
"""
import base64
import hashlib
import io
import os
import tarfile
import zipfile

try:
    import tomllib
except ImportError:  # Python < 3.11
    import tomli as tomllib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = "transgan"
TAG = "py3-none-any"
# 1980-01-01, the earliest time a zip file can hold: reproducible wheels
ZIP_TIME = (1980, 1, 1, 0, 0, 0)


def _project():
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        return tomllib.load(f)["project"]


def _dist_name(p):
    return p["name"].replace("-", "_")


def _metadata(p):
    lines = ["Metadata-Version: 2.1", "Name: %s" % p["name"], "Version: %s" % p["version"]]
    if "description" in p:
        lines.append("Summary: %s" % p["description"])
    if "requires-python" in p:
        lines.append("Requires-Python: %s" % p["requires-python"])
    for dep in p.get("dependencies", []):
        lines.append("Requires-Dist: %s" % dep)
    body = ""
    if "readme" in p:
        lines.append("Description-Content-Type: text/markdown")
        with open(os.path.join(ROOT, p["readme"]), encoding="utf-8") as f:
            body = f.read()
    return "\n".join(lines) + "\n\n" + body


def _wheel_file():
    return "Wheel-Version: 1.0\nGenerator: transgan_build\nRoot-Is-Purelib: true\nTag: %s\n" % TAG


def _package_files():
    pkg = os.path.join(ROOT, PACKAGE)
    return sorted("%s/%s" % (PACKAGE, n) for n in os.listdir(pkg)
                  if n.endswith(".py") or n == "py.typed")


def _write_wheel(wheel_directory, files):
    """files: [(archive name, bytes)]; the dist-info is added here."""
    p = _project()
    dist = "%s-%s" % (_dist_name(p), p["version"])
    info = dist + ".dist-info"
    files = list(files) + [(info + "/METADATA", _metadata(p).encode("utf-8")),
                           (info + "/WHEEL", _wheel_file().encode("ascii"))]
    record = []
    name = "%s-%s.whl" % (dist, TAG)
    with zipfile.ZipFile(os.path.join(wheel_directory, name), "w",
                         zipfile.ZIP_DEFLATED) as z:
        for arc, data in files:
            zi = zipfile.ZipInfo(arc, ZIP_TIME)
            zi.external_attr = 0o644 << 16
            zi.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(zi, data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
            record.append("%s,sha256=%s,%d" % (arc, digest.decode("ascii"), len(data)))
        record.append(info + "/RECORD,,")
        zi = zipfile.ZipInfo(info + "/RECORD", ZIP_TIME)
        zi.external_attr = 0o644 << 16
        z.writestr(zi, "\n".join(record) + "\n")
    return name


def _read(rel):
    with open(os.path.join(ROOT, rel), "rb") as f:
        return f.read()


# ------------------------------------------------------------- PEP 517 hooks

def get_requires_for_build_wheel(config_settings=None):
    return []


def get_requires_for_build_sdist(config_settings=None):
    return []


def get_requires_for_build_editable(config_settings=None):
    return []


def prepare_metadata_for_build_wheel(metadata_directory, config_settings=None):
    p = _project()
    info = "%s-%s.dist-info" % (_dist_name(p), p["version"])
    os.makedirs(os.path.join(metadata_directory, info), exist_ok=True)
    with open(os.path.join(metadata_directory, info, "METADATA"), "w", encoding="utf-8") as f:
        f.write(_metadata(p))
    with open(os.path.join(metadata_directory, info, "WHEEL"), "w", encoding="ascii") as f:
        f.write(_wheel_file())
    return info


prepare_metadata_for_build_editable = prepare_metadata_for_build_wheel


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    return _write_wheel(wheel_directory, [(f, _read(f)) for f in _package_files()])


def build_editable(wheel_directory, config_settings=None, metadata_directory=None):
    # a .pth file puts this folder (the one holding transgan/) on sys.path
    pth = "__editable__.%s.pth" % _dist_name(_project())
    return _write_wheel(wheel_directory, [(pth, (ROOT + "\n").encode("utf-8"))])


def build_sdist(sdist_directory, config_settings=None):
    p = _project()
    base = "%s-%s" % (_dist_name(p), p["version"])
    members = ["pyproject.toml", "README.md", "_build/transgan_build.py"] + _package_files()
    tests = os.path.join(ROOT, "tests")
    if os.path.isdir(tests):
        members += sorted("tests/" + n for n in os.listdir(tests) if n.endswith(".py"))
    name = base + ".tar.gz"
    with tarfile.open(os.path.join(sdist_directory, name), "w:gz", format=tarfile.PAX_FORMAT) as t:
        def add(arc, data):
            ti = tarfile.TarInfo("%s/%s" % (base, arc))
            ti.size, ti.mode, ti.mtime = len(data), 0o644, 0
            t.addfile(ti, io.BytesIO(data))
        for m in members:
            add(m, _read(m))
        add("PKG-INFO", _metadata(p).encode("utf-8"))
    return name
