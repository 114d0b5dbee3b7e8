#!/usr/bin/env python3
"""Image builder and registry stand-in for the cluster rehearsal: put on PATH as ``docker``,
``buildctl``, ``buildctl-daemonless.sh`` or ``executor`` (kaniko).

It understands the command lines the image steps run (``--as NAME`` first when called through a
wrapper):
- ``docker build --file F --tag REF [--tag REF2] CONTEXT``, ``docker push REF``, ``docker login``
  (password on stdin, never stored), ``docker logout``;
- BuildKit: ``buildctl[-daemonless.sh] build --frontend dockerfile.v0 --local context=DIR
  --local dockerfile=DIR [--opt filename=F] --output type=image,name=REF[,REF2],push=true``;
- kaniko: ``executor --context dir://DIR --dockerfile F --destination REF [--no-push]``.

A build interprets the Dockerfile's WORKDIR and COPY (relative to the context; files and
folders) into a root folder: the image's file system. RUN lines are recorded, not run (the test's
Python environment stands in for what they install); an instruction it does not know fails the
build, as an unknown instruction fails a real one. ``push`` publishes the reference in the
registry index ``$MLOPS_FAKE_REGISTRY/index.json`` (reference -> root folder), which the Katib
stand-in pulls from; a reference never pushed is not there (ErrImagePull).
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shlex
import shutil
import sys
from pathlib import Path

REGISTRY = Path(os.environ.get("MLOPS_FAKE_REGISTRY", "/nonexistent"))
INSTRUCTIONS = {"FROM", "WORKDIR", "COPY", "RUN", "ENTRYPOINT", "CMD", "ENV", "ARG", "LABEL", "USER"}


def _slug(ref: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", ref)


def _index(update: dict | None = None) -> dict:
    REGISTRY.mkdir(parents=True, exist_ok=True)
    with open(REGISTRY / "index.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        path = REGISTRY / "index.json"
        index = json.loads(path.read_text()) if path.is_file() else {"pushed": {}, "built": {}, "runs": []}
        if update:
            for key, value in update.items():
                if isinstance(value, dict):
                    index[key].update(value)
                else:
                    index[key].append(value)
            path.write_text(json.dumps(index, indent=1))
        return index


def build(context: Path, dockerfile: Path, refs: list[str]) -> Path:
    root = REGISTRY / "images" / _slug(refs[0])
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    workdir = "/"
    runs = []
    lines = re.sub(r"\\\n", " ", dockerfile.read_text()).splitlines()
    for line in (raw.strip() for raw in lines):
        if not line or line.startswith("#"):
            continue
        instruction, _, rest = line.partition(" ")
        instruction = instruction.upper()
        if instruction not in INSTRUCTIONS:
            sys.exit(f"error: dockerfile parse error: unknown instruction: {instruction}")
        if instruction == "WORKDIR":
            workdir = rest if rest.startswith("/") else f"{workdir.rstrip('/')}/{rest}"
            (root / workdir.lstrip("/")).mkdir(parents=True, exist_ok=True)
        elif instruction == "COPY":
            *sources, dest = shlex.split(rest)
            dest_path = dest if dest.startswith("/") else f"{workdir.rstrip('/')}/{dest}"
            for source in sources:
                src = context / source
                if not src.exists():
                    sys.exit(f'error: failed to compute cache key: "/{source}": not found')
                target = root / dest_path.lstrip("/")
                if src.is_dir():
                    shutil.copytree(src, target, dirs_exist_ok=True)
                else:
                    if dest.endswith("/") or len(sources) > 1:
                        target = target / src.name
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(src, target)
        elif instruction == "RUN":
            runs.append(rest)
    _index({"built": {ref: str(root) for ref in refs}})
    print(f"built {', '.join(refs)} ({len(runs)} RUN step(s) stood in by the test environment)", file=sys.stderr)
    return root


def push(refs: list[str]) -> None:
    built = _index()["built"]
    missing = [r for r in refs if r not in built]
    if missing:
        sys.exit(f"error: An image does not exist locally with the tag: {missing[0]}")
    _index({"pushed": {r: built[r] for r in refs}})
    for r in refs:
        print(f"pushed {r}", file=sys.stderr)


def docker(argv: list[str]) -> None:
    cmd, rest = argv[0], argv[1:]
    if cmd in ("login", "logout"):
        if "--password-stdin" in rest:
            sys.stdin.read()  # read and forgotten: nothing is written to a config file here
        print("Login Succeeded" if cmd == "login" else "Removing login credentials", file=sys.stderr)
        return
    if cmd == "push":
        return push(rest[-1:])
    if cmd != "build":
        sys.exit(f"docker stand-in: unsupported command {cmd!r}")
    dockerfile, refs, context = "Dockerfile", [], None
    i = 0
    while i < len(rest):
        a = rest[i]
        if a in ("--file", "-f"):
            dockerfile, i = rest[i + 1], i + 2
        elif a in ("--tag", "-t"):
            refs.append(rest[i + 1])
            i += 2
        elif a.startswith("-"):
            i += 2 if a in ("--build-arg", "--label", "--platform") else 1
        else:
            context, i = a, i + 1
    context_path = Path(context or ".")
    dockerfile_path = Path(dockerfile)
    if not dockerfile_path.is_absolute() and not dockerfile_path.exists():
        dockerfile_path = context_path / dockerfile
    build(context_path, dockerfile_path, refs)


def buildctl(argv: list[str]) -> None:
    if not argv or argv[0] != "build":
        sys.exit(f"buildctl stand-in: unsupported command {argv[:1]}")
    local, opts, output = {}, {}, ""
    rest = argv[1:]
    for i, a in enumerate(rest):
        if a == "--local":
            key, _, value = rest[i + 1].partition("=")
            local[key] = value
        elif a == "--opt":
            key, _, value = rest[i + 1].partition("=")
            opts[key] = value
        elif a == "--output":
            output = rest[i + 1]
    fields = dict(f.partition("=")[::2] for f in output.split(",") if "=" in f)
    refs = re.findall(r'name=([^,"]+)', output)
    context = Path(local.get("context", "."))
    dockerfile = Path(local.get("dockerfile", str(context))) / opts.get("filename", "Dockerfile")
    build(context, dockerfile, refs)
    if fields.get("push") == "true":
        push(refs)


def kaniko(argv: list[str]) -> None:
    context, dockerfile, refs, do_push = ".", "Dockerfile", [], True
    for i, a in enumerate(argv):
        if a == "--context":
            context = argv[i + 1].removeprefix("dir://")
        elif a == "--dockerfile":
            dockerfile = argv[i + 1]
        elif a == "--destination":
            refs.append(argv[i + 1])
        elif a == "--no-push":
            do_push = False
    path = Path(dockerfile) if Path(dockerfile).is_absolute() or Path(dockerfile).exists() else Path(context) / dockerfile
    build(Path(context), path, refs)
    if do_push:
        push(refs)


def main() -> None:
    name, argv = Path(sys.argv[0]).name, sys.argv[1:]
    if argv[:1] == ["--as"]:  # called through a wrapper script named after the tool
        name, argv = argv[1], argv[2:]
    if name == "docker":
        docker(argv)
    elif name.startswith("buildctl"):
        buildctl(argv)
    elif name == "executor":
        kaniko(argv)
    else:
        sys.exit(f"image builder stand-in: called as {name!r}")


if __name__ == "__main__":
    main()
