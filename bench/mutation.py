"""`make mutation`: how many planted bugs (mutants) of the core decision code the tests catch.

For each target of mutation.toml: snapshot the work tree into build/mutation/<target>/ (the shared
tree itself is never mutated, and code others edit meanwhile cannot change a run half-way), run
mutmut there on the target's functions with the target's tests, then print mutants total / killed /
survived, the score, and every surviving mutant as its one-line change.

    .venv/bin/python bench/mutation.py                 # every target
    .venv/bin/python bench/mutation.py gate metrics    # some
    .venv/bin/python bench/mutation.py --report-only   # re-read the last results

A summary goes to build/mutation/summary.json. Reported, never enforced: not part of `make test`.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import tomllib

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
CONFIG = REPO / "mutation.toml"
OUT = REPO / "build" / "mutation"
COPIED = ("pyhelpers", "tests", "examples", "setup.cfg", "bench/mutation_pytest_plugin.py")
PLUGIN = "mutation_pytest_plugin"
IGNORED = shutil.ignore_patterns("__pycache__", ".mlops", ".pytest_cache", "*.pyc")

# mutmut's exit-code classes (mutmut/stats.py): what counts as caught
KILLED = {"killed", "timeout", "caught by type check", "segfault"}
SURVIVED = {"survived"}
UNTESTED = {"no tests"}


def dotted(module: str) -> str:
    """pyhelpers/notify/__init__.py -> pyhelpers.notify (how mutmut names the mutants of a module)."""
    return module.removesuffix(".py").removesuffix("/__init__").replace("/", ".")


def snapshot(name: str, target: dict, run: dict) -> Path:
    """A copy of the work tree's code and tests, with mutmut's settings for this target."""
    ws = OUT / name
    shutil.rmtree(ws, ignore_errors=True)
    ws.mkdir(parents=True)
    for item in COPIED:
        src = REPO / item
        if src.is_dir():
            shutil.copytree(src, ws / item, ignore=IGNORED)
        elif src.is_file():
            shutil.copy2(src, ws / src.name)
    settings = {
        "source_paths": ["pyhelpers"],
        "only_mutate": [target["module"]],
        "also_copy": ["examples", f"{PLUGIN}.py"],
        "pytest_add_cli_args": ["-p", PLUGIN, *run.get("pytest_args", [])],
        "pytest_add_cli_args_test_selection": target["tests"],
        "use_git_change_detection": False,  # the snapshot is no git repository
        "do_not_mutate_patterns": target.get("skip_lines", []),  # regexes of lines left alone
    }
    lines = (REPO / "pyproject.toml").read_text().rstrip() + "\n\n[tool.mutmut]\n"
    lines += "".join(f"{key} = {json.dumps(value)}\n" for key, value in settings.items())
    (ws / "pyproject.toml").write_text(lines)
    return ws


def failure_of(ws: Path) -> str | None:
    """Why mutmut could not measure a target (e.g. a test failing on the unmutated snapshot), or None."""
    log = ws / "mutmut.log"
    if not log.is_file():
        return "not run"
    text = log.read_text(errors="replace").replace("\r", "\n")
    if "failed to collect stats" not in text and "Failed to run clean test" not in text:
        return None
    failed = [line.strip() for line in text.splitlines() if line.startswith(("FAILED ", "E  "))]
    return "the tests fail on the unmutated snapshot: " + (failed[0] if failed else "see mutmut.log")


def mutants_of(ws: Path, target: dict) -> list[str]:
    meta = ws / "mutants" / (target["module"] + ".meta")
    codes = json.loads(meta.read_text())["exit_code_by_key"] if meta.is_file() else {}
    patterns = [f"{dotted(target['module'])}.{glob}" for glob in target["functions"]]
    return sorted(k for k in codes if any(fnmatch.fnmatchcase(k, p) for p in patterns))


def select_by_lines(ws: Path, target: dict, log) -> list[str]:
    """The target's mutants whose original line matches one of ``lines`` (the decision's lines of a
    long function). mutmut first generates the mutants and maps tests to functions; it then stops,
    as no mutant is named ``__lines_first__``."""
    subprocess.run([str(BIN / "mutmut"), "run", f"{dotted(target['module'])}.__lines_first__"], cwd=ws,
                   stdout=log, stderr=subprocess.STDOUT)
    names = mutants_of(ws, target)
    diffs = diffs_of(ws, names)
    chosen = []
    for name in names:
        removed = [line[1:].strip() for line in diffs.get(name, "").splitlines()
                   if line.startswith("-") and not line.startswith("---")]
        if any(re.search(rx, line) for rx in target["lines"] for line in removed):
            chosen.append(name)
    (ws / "selected.json").write_text(json.dumps(chosen, indent=1) + "\n")
    return chosen


def run_target(name: str, target: dict, run: dict) -> float:
    ws = snapshot(name, target, run)
    patterns = [f"{dotted(target['module'])}.{glob}" for glob in target["functions"]]
    started = time.monotonic()
    with open(ws / "mutmut.log", "w") as log:
        if target.get("lines"):
            patterns = select_by_lines(ws, target, log) or patterns
        proc = subprocess.run([str(BIN / "mutmut"), "run", "--max-children", str(run.get("max_children", 2)),
                               *patterns], cwd=ws, stdout=log, stderr=subprocess.STDOUT)
    if proc.returncode != 0:
        print(f"{name}: mutmut exited {proc.returncode}; see {ws / 'mutmut.log'}", file=sys.stderr)
    return time.monotonic() - started


def statuses(ws: Path, target: dict) -> dict[str, str]:
    """mutant name -> status, for the target's functions only."""
    from mutmut.stats import status_by_exit_code

    meta = ws / "mutants" / (target["module"] + ".meta")
    if not meta.is_file():
        return {}
    codes = json.loads(meta.read_text())["exit_code_by_key"]
    module = dotted(target["module"])
    patterns = [f"{module}.{glob}" for glob in target["functions"]]
    selected = ws / "selected.json"
    chosen = set(json.loads(selected.read_text())) if target.get("lines") and selected.is_file() else None
    return {key: status_by_exit_code[code] for key, code in codes.items()
            if any(fnmatch.fnmatchcase(key, p) for p in patterns) and (chosen is None or key in chosen)}


# Run inside a target's folder: prints {mutant: diff} for the names on stdin (one process for all).
DIFFS = """
import json, sys
from mutmut.mutation.diff_apply import get_diff_for_mutant
out = {}
for name in json.load(sys.stdin):
    try:
        out[name] = get_diff_for_mutant(name)
    except Exception as exc:  # noqa: BLE001
        out[name] = f"(no diff: {exc})"
print(json.dumps(out))
"""


def diffs_of(ws: Path, mutants: list[str]) -> dict[str, str]:
    if not mutants:
        return {}
    proc = subprocess.run([sys.executable, "-c", DIFFS], cwd=ws, input=json.dumps(mutants), capture_output=True,
                          text=True)
    return json.loads(proc.stdout) if proc.returncode == 0 else {m: f"(no diff: {proc.stderr[-200:]})" for m in mutants}


def change_of(mutant: str, diff: str) -> tuple[str, str]:
    """(function, the mutated line) of a mutant, from mutmut's own diff."""
    lines = diff.splitlines()
    added = [line[1:].strip() for line in lines if line.startswith("+") and not line.startswith("+++")]
    removed = [line[1:].strip() for line in lines if line.startswith("-") and not line.startswith("---")]
    mangled = mutant.rpartition(".")[2].partition("__mutmut_")[0]  # x_func, or xǁClassǁmethod
    function = mangled.removeprefix("xǁ").removeprefix("x_").replace("ǁ", ".")
    change = f"{' / '.join(removed)}  ->  {' / '.join(added)}" if removed or added else diff or "(no diff)"
    return function, change


def equivalent_reason(equivalents: list[dict], target: str, function: str, change: str) -> str | None:
    for entry in equivalents:
        if entry["target"] == target and entry["function"] == function and entry["mutated"] in change:
            return entry["reason"]
    return None


def report(name: str, target: dict, equivalents: list[dict], seconds: float | None) -> dict:
    ws = OUT / name
    found = statuses(ws, target)
    survivors, equivalent, untested = [], [], []
    diffs = diffs_of(ws, sorted(m for m, status in found.items() if status not in KILLED))
    for mutant, status in sorted(found.items()):
        if status in KILLED:
            continue
        function, change = change_of(mutant, diffs.get(mutant, ""))
        reason = equivalent_reason(equivalents, name, function, change) if status in SURVIVED else None
        entry = {"mutant": mutant, "status": status, "function": function, "change": change}
        if reason:
            equivalent.append({**entry, "reason": reason})
        elif status in UNTESTED:
            untested.append(entry)
        else:
            survivors.append(entry)
    killed = sum(s in KILLED for s in found.values())
    scored = len(found) - len(equivalent)
    made = ws / "pyproject.toml"  # written when the snapshot was taken
    snapshot_at = time.strftime("%H:%M:%SZ", time.gmtime(made.stat().st_mtime)) if made.is_file() else None
    return {"target": name, "module": target["module"], "functions": target["functions"], "error": failure_of(ws),
            "snapshot_at": snapshot_at,
            "tests": target["tests"], "total": len(found), "killed": killed,
            "survived": len(survivors), "untested": len(untested), "equivalent": len(equivalent),
            "score": round(killed / scored, 4) if scored else None, "seconds": seconds,
            "surviving": survivors + untested, "equivalents": equivalent}


def markdown(results: list[dict], total: int, killed: int, overall: float | None) -> str:
    rows = ["| target | code | mutants | killed | survived | equivalent | score |", "|---|---|---:|---:|---:|---:|---:|"]
    for r in results:
        functions = ", ".join(f.replace("x_", "").replace("xǁ", "").replace("ǁ", ".").rstrip("*")
                              for f in r["functions"])
        score = f"{r['score']:.1%}" if r["score"] is not None else "-"
        rows.append(f"| {r['target']} | `{r['module']}` {functions if functions != '' else '(all)'} | {r['total']} | "
                    f"{r['killed']} | {r['survived'] + r['untested']} | {r['equivalent']} | {score} |")
    rows.append(f"| **overall** | | {total} | {killed} | {sum(r['survived'] + r['untested'] for r in results)} | "
                f"{sum(r['equivalent'] for r in results)} | **{overall:.1%}** |" if overall is not None else "")
    lines = ["\n".join(rows), "", "Surviving mutants:", ""]
    lines += [f"- {r['target']}: `{s['function']}`: `{s['change']}`" for r in results for s in r["surviving"]]
    lines += ["", "Equivalent mutants (left out of the score):", ""]
    lines += [f"- {r['target']}: `{s['function']}`: `{s['change']}` — {s['reason']}" for r in results
              for s in r["equivalents"]]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("targets", nargs="*", help="targets of mutation.toml (default: all)")
    parser.add_argument("--report-only", action="store_true", help="summarise the last run without running")
    parser.add_argument("--markdown", action="store_true", help="also print the summary as a Markdown table")
    args = parser.parse_args()
    config = tomllib.loads(CONFIG.read_text())
    targets, run, equivalents = config["targets"], config.get("run", {}), config.get("equivalent", [])
    unknown = sorted(set(args.targets) - set(targets))
    if unknown:
        print(f"mutation.toml has no target {', '.join(unknown)} (known: {', '.join(targets)})", file=sys.stderr)
        return 2
    chosen = args.targets or list(targets)
    results = []
    for name in chosen:
        seconds = None
        if not args.report_only:
            print(f"[mutation] {name}: {targets[name]['module']} {' '.join(targets[name]['functions'])}",
                  file=sys.stderr, flush=True)
            seconds = round(run_target(name, targets[name], run), 1)
        results.append(report(name, targets[name], equivalents, seconds))

    print(f"\n{'target':<18} {'total':>6} {'killed':>7} {'survived':>9} {'no test':>8} {'equiv.':>7} {'score':>7}"
          f" {'time':>7}")
    for r in results:
        score = f"{r['score']:.1%}" if r["score"] is not None else "-"
        took = f"{r['seconds']:.0f}s" if r["seconds"] is not None else "-"
        print(f"{r['target']:<18} {r['total']:>6} {r['killed']:>7} {r['survived']:>9} {r['untested']:>8} "
              f"{r['equivalent']:>7} {score:>7} {took:>7}")
    total = sum(r["total"] for r in results)
    killed = sum(r["killed"] for r in results)
    scored = total - sum(r["equivalent"] for r in results)
    overall = round(killed / scored, 4) if scored else None
    print(f"{'overall':<18} {total:>6} {killed:>7} {sum(r['survived'] for r in results):>9} "
          f"{sum(r['untested'] for r in results):>8} {total - scored:>7} "
          f"{(f'{overall:.1%}' if overall is not None else '-'):>7}")
    for r in results:
        if r["error"]:
            print(f"  NOT MEASURED {r['target']}: {r['error'][:300]} ({OUT / r['target'] / 'mutmut.log'})")
        for s in r["surviving"]:
            print(f"  survived  {r['target']}: {s['function']}: {s['change']}" + (
                f" [{s['status']}]" if s["status"] != "survived" else ""))
        for s in r["equivalents"]:
            print(f"  equivalent {r['target']}: {s['function']}: {s['change']}  ({s['reason']})")
    if args.markdown:
        print(markdown(results, total, killed, overall))
    OUT.mkdir(parents=True, exist_ok=True)
    summary = {"time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "overall_score": overall,
               "total": total, "killed": killed, "targets": results}
    if not args.targets:
        (OUT / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    else:  # a partial run must not overwrite the figures of a full one
        (OUT / f"summary-{'-'.join(chosen)}.json").write_text(json.dumps(summary, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
