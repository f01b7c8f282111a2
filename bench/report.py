"""bench/report.py OUT MD SVG: the tables and the plot from bench/run.sh's data."""
import statistics
import sys
from collections import defaultdict

out, md_path, svg_path = sys.argv[1:4]


def runs(path):
    """name -> list of (wall_ms, cpu_ms, maxrss_kib, status, output)."""
    table = defaultdict(list)
    for line in open(path):
        fields = line.split()
        if len(fields) < 6:
            continue
        name, wall, user, sys_, rss, status = fields[:6]
        output = fields[6] if len(fields) > 6 else ""
        table[name].append((int(wall) / 1e6, (int(user) + int(sys_)) / 1e3, int(rss), int(status), output))
    return table


rounds = runs(f"{out}/rounds.txt")
ok = {n: r for n, r in rounds.items() if all(run[3] == 0 for run in r)}
failed = sorted(set(rounds) - set(ok))
median = {n: statistics.median(run[0] for run in r) for n, r in ok.items()}
order = sorted(ok, key=median.get)
base, floor = median.get("toybox"), median.get("floor")
lines = [open(f"{out}/versions.txt").read().strip().replace("\n", "  \n"), ""]
lines += [f"Start to exit of `/payload` (a static program that does nothing), "
          f"{len(next(iter(ok.values())))} rounds, every command once per round:", ""]
lines += ["| runtime | min ms | median ms | max ms | × toybox | × floor | peak RSS KiB |", "|---|---|---|---|---|---|---|"]
for name in order:
    walls = [run[0] for run in ok[name]]
    rss = statistics.median(run[2] for run in ok[name])
    ratio = lambda ref: f"{median[name] / ref:.2f}" if ref else "-"
    lines.append(f"| {name} | {min(walls):.2f} | {median[name]:.2f} | {max(walls):.2f} | "
                 f"{ratio(base)} | {ratio(floor)} | {rss:.0f} |")
for name in failed:
    lines.append(f"| {name} | failed: exit {rounds[name][0][3]} | | | | | |")
lines += ["", "Peak RSS is `ru_maxrss` from wait4(2): the runtime or, if larger, a process it waited for."]

# The same commands, each right after a run of runc (bench/timer.c's `after`),
# and each after the machine idled (`idle`).
orders = [("random order each round", rounds)]
for label, name in [("each right after runc", "after-runc"), ("each after 300 ms idle", "idle")]:
    try:
        orders.append((label, runs(f"{out}/{name}.txt")))
    except FileNotFoundError:
        pass
lines += ["", "toybox against the floor by order (medians, ms):", "",
          "| order | toybox | floor | floor+mounts | toybox × floor |", "|---|---|---|---|---|"]
for label, table in orders:
    med = {n: statistics.median(run[0] for run in r) for n, r in table.items()
           if all(run[3] == 0 for run in r)}
    cell = lambda n: f"{med[n]:.2f}" if n in med else "-"
    ratio = f"{med['toybox'] / med['floor']:.2f}" if "toybox" in med and "floor" in med else "-"
    lines.append(f"| {label} | {cell('toybox')} | {cell('floor')} | {cell('floor+mounts')} | {ratio} |")

# --net bridge while another container keeps the bridge and NAT table up:
# what a container costs when it is not the only one (bench/run.sh, `warm`).
try:
    warm = runs(f"{out}/warm.txt")
    med = {n: statistics.median(run[0] for run in r) for n, r in warm.items()
           if all(run[3] == 0 for run in r)}
    lines += ["", "With another `--net bridge` container running (the bridge and shared table already up; "
              "medians, ms):", "", "| runtime | median ms | + over toybox |", "|---|---|---|"]
    for name in ["toybox", "toybox-bridge", "toybox-bridge-p"]:
        if name in med:
            lines.append(f"| {name} | {med[name]:.2f} | {med[name] - med.get('toybox', 0):+.2f} |")
except FileNotFoundError:
    pass

bursts = runs(f"{out}/bursts.txt")
lines += ["", "Started at once (5 bursts each; latency is each container's start to exit):", "",
          "| runtime | at once | median latency ms | CPU ms per container | failed | distinct hostnames |",
          "|---|---|---|---|---|---|"]
for name in sorted(bursts, key=lambda n: (int(n.split("-")[1]), n)):
    r = bursts[name]
    n = int(name.split("-")[1])
    per_burst = [r[i:i + n] for i in range(0, len(r), n)]
    cpu = statistics.median(sum(run[1] for run in b) / n for b in per_burst)
    names = [len({run[4] for run in b}) == n for b in per_burst]
    distinct = "yes" if all(names) else "no" if name.startswith("toybox") else "(not set)"
    lines.append(f"| {name.split('-')[0]} | {n} | {statistics.median(run[0] for run in r):.2f} | {cpu:.2f} | "
                 f"{sum(run[3] != 0 for run in r)} | {distinct} |")

stages = defaultdict(list)
for line in open(f"{out}/stages.txt"):
    if line.startswith("=> ") and " ... done (" in line:
        stage, micros = line[3:].split(" ... done (")
        stages[stage].append(int(micros.split()[0]))
lines += ["", "toybox by stage (`-v`, median of the runs; the parent's and the child's stages interleave):", "",
          "| stage | median µs |", "|---|---|"]
for stage, values in stages.items():
    lines.append(f"| {stage} | {statistics.median(values):.0f} |")
lines += ["", "(`uid map` is the parent waiting for the child's mounts, then writing the maps; `wait` is "
          "the child's capabilities, seccomp and execve, the payload, and its exit.)"]

lines += ["", "clone(2) by namespace (`bench/clonens.c`, median of the rounds; where the clone stage goes):", "",
          "| namespaces | median µs |", "|---|---|"]
for line in open(f"{out}/clonens.txt"):
    name, micros = line.rstrip("\n").split("\t")
    lines.append(f"| {name} | {micros} |")
open(md_path, "w").write("\n".join(lines) + "\n")

# The plot: one bar per runtime, the median, toybox highlighted.
width, bar, gap, left = 640, 22, 8, 80
top = max(median.values())
height = 40 + len(order) * (bar + gap)
svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="13">',
       f'<text x="{left}" y="18">median start-to-exit, ms (lower is better)</text>']
for i, name in enumerate(order):
    y = 30 + i * (bar + gap)
    w = (width - left - 70) * median[name] / top
    colour = "#d9534f" if name == "toybox" else "#5b8ff9" if name == "floor" else "#999"
    svg.append(f'<text x="{left - 6}" y="{y + 16}" text-anchor="end">{name}</text>')
    svg.append(f'<rect x="{left}" y="{y}" width="{w:.1f}" height="{bar}" fill="{colour}"/>')
    svg.append(f'<text x="{left + w + 6:.1f}" y="{y + 16}">{median[name]:.2f}</text>')
svg.append("</svg>")
open(svg_path, "w").write("\n".join(svg) + "\n")
