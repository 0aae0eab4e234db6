#!/usr/bin/python3
"""scripts/capacity-plan against synthetic bench reports.

The reports are built like bench/report.cc's ReportJson (every key it
writes, in its shape) from a known cost model, with a little seeded noise;
the tests check that the fit recovers the model within 1%, the prediction
table, --check's error, the PNG plots, and the errors for malformed input.
Standard library only, except the plots test, which needs matplotlib
(python3-matplotlib, scripts/setup.sh).
"""

import importlib.machinery
import importlib.util
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "scripts", "capacity-plan")
MIB = 1 << 20
GIB = 1 << 30

# The known model the reports are generated from (bytes).
TEMPLATE = 128 * MIB
MODEL = {
    # basis: (intercept, fixed per clone at 1 vCPU, per dirtied page, KSM factor)
    "memavail": (3 * MIB, 600 * 1024, 4096 * 1.02, 0.70),
    "pss": (40 * MIB, 150 * 1024, 4096 * 1.00, 0.60),
}
WS_BASE = {"memavail": 700 * 1024, "pss": 2.6 * MIB}  # working set's per-clone memory at 0 pages
PER_VCPU = 100 * 1024  # when a report says target.vcpus


def load_module():
    loader = importlib.machinery.SourceFileLoader("capacity_plan", SCRIPT)
    spec = importlib.util.spec_from_loader("capacity_plan", loader)
    mod = importlib.util.module_from_spec(spec)
    loader.exec_module(mod)
    return mod


def latency(count=0):
    return {"count": count, "p50": 0.5, "p90": 0.7, "p99": 1.2, "max": 2.0, "mean": 0.6}


def bench_report(counts=range(50, 1001, 50), pages=(0, 256, 1024, 4096, 16384), ksm=True,
                 noise=0.003, seed=1, scale=1.0, vcpus=None, guest="bare", pid_max=4194304,
                 threads_max=1000000, nr_open=1048576, working_set=True, density=True):
    """A `kata-factory bench --mode all --json` object, as bench/report.cc writes it."""
    rnd = random.Random(seed)

    def jitter():
        return 1.0 + rnd.uniform(-noise, noise)

    extra = PER_VCPU * (vcpus - 1) if vcpus else 0

    def per_vm(basis, n):
        c0, f, _, _ = MODEL[basis]
        return (c0 + n * (f + extra)) / n * scale * jitter()

    r = {
        "report_version": 1,
        "command": "kata-factory bench --mode all --json",
        "date": "2026-11-29T12:00:00Z",
        "mode": "all",
        "machine": {"cpu_model": "Synthetic CPU", "cores": 2, "mem_total_bytes": 24 * GIB,
                    "kernel": "6.1.0", "kvm": "pvm", "under_hypervisor": True},
        "target": {"daemon": "self", "socket": "", "template": guest, "guest": guest,
                   "template_mem_bytes": TEMPLATE, "template_boot_ms": 12.5},
        "latency": {"what": "...", "pool_hit": {"skipped": "synthetic"},
                    "pool_miss": {"skipped": "synthetic"}},
        "throughput": {"what": "...", "clients": 2, "pool_size": 0, "requested": 10, "done": 10,
                       "failures": 0, "pool_hits": 0, "wall_s": 0.01, "vms_per_second": 1000.0,
                       "get_vm_to_first_ping_ms": latency(10), "get_vm_ms": latency(10),
                       "release_ms": latency(10)},
    }
    if vcpus:
        r["target"]["vcpus"] = vcpus  # an extension: report_version 1 does not write it
    if density:
        counts = list(counts)
        points = []
        for i, n in enumerate(counts):
            points.append({
                "live": n, "elapsed_s": 0.01 * n,
                "mem_available_delta_per_vm": per_vm("memavail", n),
                "pss_per_vm": per_vm("pss", n), "rss_per_vm": 2.0 * MIB,
                "private_dirty_per_vm": 0.1 * MIB, "kvm_estimate_per_vm": 555008,
                "batch_get_vm_to_first_ping_ms": latency(counts[0]),
            })
        live = counts[-1]
        d = {
            "what": "...", "count": live, "mem_budget_bytes": 0, "step": counts[0],
            "live": live, "stop_reason": "count", "baseline_mem_available_bytes": 20 * GIB,
            "limits": {"root": True, "pid_max": pid_max, "threads_max": threads_max,
                       "max_map_count": 65530, "nr_open": nr_open, "nofile_soft": 1024,
                       "nofile_hard": 524288, "nproc_soft": 100000, "nproc_hard": 100000,
                       "actions": [{"action": "raised RLIMIT_NOFILE from 1024 to 3256"}]},
            "get_vm_to_first_ping_ms": latency(live),
            "points": points,
        }
        if ksm:
            before = {b: points[-1][f] for b, f in
                      (("memavail", "mem_available_delta_per_vm"), ("pss", "pss_per_vm"))}
            d["ksm"] = {
                "what": "...", "settle_s": 3.0, "pages_shared": 100, "pages_sharing": 5000,
                "pages_sharing_before": 0, "saved_bytes": 5000 * 4096,
                "saved_bytes_per_vm": 5000 * 4096 / live,
                "pss_per_vm_before": before["pss"],
                "pss_per_vm_after": before["pss"] * MODEL["pss"][3],
                "mem_available_delta_per_vm_before": before["memavail"],
                "mem_available_delta_per_vm_after": before["memavail"] * MODEL["memavail"][3],
            }
        r["density"] = d
    if working_set:
        steps = []
        for p in pages:
            s = {"pages": p, "vms": 16, "dirtied_bytes": p * 4096}
            for b, f in (("memavail", "mem_available_delta_per_vm"), ("pss", "pss_per_vm")):
                s[f] = (WS_BASE[b] + MODEL[b][2] * p) * scale * jitter()
            s.update({"rss_per_vm": 3 * MIB, "private_dirty_per_vm": 0.2 * MIB,
                      "dirty_pages_call_ms_p50": 0.3})
            steps.append(s)
        steps.append({"pages": 999999, "skipped": "does not fit: 128 MiB from gpa"})
        r["working_set"] = {"what": "...", "vms_per_step": 16, "gpa": 1 << 20,
                            "max_pages": 32000, "steps": steps}
    return r


class Base(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="capacity-plan-test-")
        self.addCleanup(self.tmp.cleanup)

    def write(self, name, doc):
        path = os.path.join(self.tmp.name, name)
        with open(path, "w") as f:
            f.write(doc if isinstance(doc, str) else json.dumps(doc))
        return path

    def run_cli(self, *args):
        p = subprocess.run([sys.executable, SCRIPT, *args], capture_output=True, text=True,
                           timeout=120)
        return p.returncode, p.stdout, p.stderr

    def plan_json(self, *args):
        rc, out, err = self.run_cli(*args, "--json")
        self.assertEqual(rc, 0, err)
        return json.loads(out)

    def assertNear(self, got, want, rel=0.01, what=""):
        self.assertLessEqual(abs(got - want), abs(want) * rel,
                             f"{what}: got {got}, want {want} within {rel * 100:g}%")


class FitRecoversTheModel(Base):
    def test_fixed_page_and_ksm_costs_within_1pct(self):
        bench = self.write("bench.json", bench_report())
        doc = self.plan_json(bench)
        m = doc["model"]
        for b, (c0, f, per_page, k) in MODEL.items():
            fx = m["fixed_per_clone"][b]
            self.assertNear(fx["bytes"], f, what=f"{b} fixed")
            self.assertNear(fx["intercept_bytes"], c0, rel=0.05, what=f"{b} intercept")
            self.assertGreater(fx["r2"], 0.999)
            self.assertEqual(fx["points"], 20)
            self.assertNear(m["per_dirtied_page"][b]["bytes"], per_page, what=f"{b} per page")
            self.assertEqual(m["per_dirtied_page"][b]["points"], 5)  # the skipped step left out
            self.assertNear(m["ksm_factor"][b]["factor"], k, what=f"{b} KSM")
        self.assertEqual(m["per_vcpu"]["source"], "kvm-estimate-constant")
        self.assertEqual(m["per_vcpu"]["bytes"]["memavail"], 24 * 1024)

    def test_text_names_every_part_and_its_fit_quality(self):
        rc, out, err = self.run_cli(self.write("bench.json", bench_report()))
        self.assertEqual(rc, 0, err)
        for s in ("fixed cost per clone", "MemAvailable delta:", "summed Pss:", "R^2",
                  "20 points", "cost per dirtied 4 KiB page", "5 points", "per vCPU:",
                  "NOT MEASURED", "24.0 KiB", "KSM factor", "0.7", "predicted VMs per host",
                  "kernel.pid_max"):
            self.assertIn(s, out)

    def test_per_vcpu_is_fitted_over_two_vcpu_counts(self):
        one = self.write("v1.json", bench_report(vcpus=1, seed=2))
        two = self.write("v2.json", bench_report(vcpus=2, seed=3))
        m = self.plan_json(one, two)["model"]
        self.assertEqual(m["per_vcpu"]["source"], "fitted")
        for b in MODEL:
            self.assertNear(m["per_vcpu"]["bytes"][b], PER_VCPU, rel=0.05, what=f"{b} per vCPU")
            self.assertNear(m["fixed_per_clone"][b]["bytes"], MODEL[b][1], what=f"{b} fixed")
            self.assertEqual(m["fixed_per_clone"][b]["points"], 40)

    def test_pooled_reports_of_different_sizes(self):
        small = self.write("s.json", bench_report(counts=range(10, 201, 10), seed=4))
        large = self.write("l.json", bench_report(counts=range(500, 5001, 500), seed=5))
        m = self.plan_json(small, large)["model"]
        self.assertEqual(m["fixed_per_clone"]["memavail"]["points"], 30)
        self.assertNear(m["fixed_per_clone"]["memavail"]["bytes"], MODEL["memavail"][1])


class Predictions(Base):
    def expected(self, host, reserve, pages, ksm, basis="memavail", vcpu_extra=0):
        c0, f, per_page, k = MODEL[basis]
        cost = (f + vcpu_extra) * (k if ksm else 1) + per_page * pages
        return (host - reserve - TEMPLATE - c0) / cost

    def test_table_matches_the_model(self):
        bench = self.write("bench.json", bench_report())
        doc = self.plan_json(bench, "--host-mem", "128G,512G", "--reserve", "4G",
                             "--dirty-pages", "0,1024,16384", "--ksm", "both", "--no-limits")
        rows = doc["predictions"]
        self.assertEqual(len(rows), 2 * 3 * 2)
        for r in rows:
            want = self.expected(r["host_mem_bytes"], 4 * GIB, r["dirty_pages"], r["ksm"])
            self.assertNear(r["vms"], want, what=str(r))
            self.assertEqual(r["bound_by"], "memory")
            self.assertEqual(r["vcpus"], 1)
        self.assertEqual({r["host_mem_bytes"] for r in rows}, {128 * GIB, 512 * GIB})
        # The text table: one line per workload and host.
        rc, out, err = self.run_cli(bench, "--host-mem", "128G,512G", "--dirty-pages",
                                    "0,1024,16384", "--ksm", "both", "--no-limits")
        self.assertEqual(rc, 0, err)
        table = out[out.index("predicted VMs per host"):]
        self.assertEqual(len(re.findall(r"^\s+(128G|512G)\s+\d+\s+(on|off)\s", table, re.M)), 12)

    def test_pss_basis_and_more_vcpus(self):
        bench = self.write("bench.json", bench_report())
        rows = self.plan_json(bench, "--basis", "pss", "--host-mem", "256G", "--vcpus", "1,4",
                              "--no-limits")["predictions"]
        for r in rows:
            want = self.expected(256 * GIB, 4 * GIB, 0, False, "pss",
                                 24 * 1024 * (r["vcpus"] - 1))
            self.assertNear(r["vms"], want, what=str(r))

    def test_limits_cap_the_count(self):
        bench = self.write("bench.json", bench_report(pid_max=32768))
        rows = self.plan_json(bench, "--host-mem", "512G")["predictions"]
        self.assertEqual(rows[0]["vms"], 32768 - 512)
        self.assertEqual(rows[0]["bound_by"], "kernel.pid_max")
        self.assertGreater(rows[0]["vms_by_memory"], 32768)
        linux = self.write("linux.json", bench_report(pid_max=32768, guest="linux"))
        rows = self.plan_json(linux, "--host-mem", "512G")["predictions"]
        self.assertEqual(rows[0]["vms"], (32768 - 512) // 3)
        rows = self.plan_json(bench, "--host-mem", "512G", "--no-limits")["predictions"]
        self.assertEqual(rows[0]["bound_by"], "memory")

    def test_threads_max_scales_with_host_memory(self):
        # A 24 GiB bench machine with a tenth of the kernel's default
        # threads-max (RAM pages / 32): the cap grows with the host.
        per_gib = GIB // 4096 // 320
        bench = self.write("bench.json", bench_report(threads_max=24 * per_gib,
                                                      nr_open=1 << 30))
        rows = self.plan_json(bench, "--host-mem", "48G,512G")["predictions"]
        for r, gib in zip(rows, (48, 512)):
            self.assertEqual(r["vms"], gib * per_gib - 512)
            self.assertEqual(r["bound_by"], "kernel.threads-max")
            self.assertGreater(r["vms_by_memory"], r["vms"])

    def test_default_host_is_the_bench_machine(self):
        rows = self.plan_json(self.write("b.json", bench_report()))["predictions"]
        self.assertEqual([r["host_mem_bytes"] for r in rows], [24 * GIB])

    def test_sizes(self):
        mod = load_module()
        self.assertEqual(mod.parse_size("128G"), 128 * GIB)
        self.assertEqual(mod.parse_size("512MiB"), 512 * MIB)
        self.assertEqual(mod.parse_size("1.5T"), int(1.5 * (1 << 40)))
        self.assertEqual(mod.parse_size("4096"), 4096)
        for bad in ("", "G", "12Q", "-1G", "1,5G"):
            with self.assertRaises(ValueError):
                mod.parse_size(bad)


class Check(Base):
    def test_error_of_a_run_at_another_size(self):
        small = self.write("small.json", bench_report(counts=range(20, 401, 20), noise=0))
        exact = self.write("exact.json", bench_report(counts=range(500, 5001, 500), noise=0))
        doc = self.plan_json(small, "--check", exact)
        self.assertLess(abs(doc["check"]["error_pct"]), 0.01)
        self.assertIn("5000 live clones (extrapolated", doc["check"]["headline"])
        # The larger run used 5% more memory than the model says: -4.76%.
        off = self.write("off.json", bench_report(counts=range(500, 5001, 500), noise=0,
                                                  scale=1.05))
        doc = self.plan_json(small, "--check", off)
        self.assertAlmostEqual(doc["check"]["error_pct"], (1 / 1.05 - 1) * 100, places=3)
        whats = {r["what"] for r in doc["check"]["rows"]}
        self.assertEqual(whats, {"density", "density, KSM on (per clone)",
                                 "working set (per clone)"})
        for r in doc["check"]["rows"]:
            self.assertAlmostEqual(r["error_pct"], (1 / 1.05 - 1) * 100, places=2, msg=str(r))

        rc, out, err = self.run_cli(small, "--check", off)
        self.assertEqual(rc, 0, err)
        self.assertIn("prediction error (MemAvailable delta, total memory of 5000 live clones",
                      out)
        self.assertIn("-4.76%", out)
        rc, out, err = self.run_cli(small, "--check", off, "--max-error", "5")
        self.assertEqual(rc, 0, err)
        rc, out, err = self.run_cli(small, "--check", off, "--max-error", "4.5")
        self.assertEqual(rc, 3, out + err)
        self.assertIn("prediction error -4.76% is above --max-error 4.5%", err)

    def test_check_of_a_working_set_only_run(self):
        small = self.write("small.json", bench_report())
        ws = self.write("ws.json", bench_report(density=False, pages=(0, 8192), noise=0))
        doc = self.plan_json(small, "--check", ws)
        self.assertIn("8192 dirtied pages", doc["check"]["headline"])
        self.assertLess(abs(doc["check"]["error_pct"]), 1)


class Plots(Base):
    def test_three_pngs(self):
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            self.fail("python3-matplotlib is not installed (scripts/setup.sh installs it)")
        plots = os.path.join(self.tmp.name, "plots")
        bench = self.write("bench.json", bench_report())
        rc, out, err = self.run_cli(bench, "--host-mem", "64G,128G,512G", "--dirty-pages",
                                    "0,4096", "--ksm", "both", "--plots", plots)
        self.assertEqual(rc, 0, err)
        names = ["memory-per-clone-vs-live.png", "memory-per-clone-vs-dirty-pages.png",
                 "vms-per-host.png"]
        for n in names:
            path = os.path.join(plots, n)
            self.assertIn(f"wrote {path}", out)
            with open(path, "rb") as f:
                self.assertEqual(f.read(8), b"\x89PNG\r\n\x1a\n", n)
            self.assertGreater(os.path.getsize(path), 5000, n)


class Errors(Base):
    def assertDataError(self, args, *fragments):
        rc, out, err = self.run_cli(*args)
        self.assertEqual(rc, 1, out + err)
        self.assertEqual(out, "")
        self.assertEqual(err.count("\n"), 1, err)
        self.assertTrue(err.startswith("capacity-plan: "), err)
        for f in fragments:
            self.assertIn(f, err)

    def test_missing_and_malformed_fields_are_named(self):
        cases = [
            (lambda r: r["density"]["points"][2].pop("pss_per_vm"),
             "missing field density.points[2].pss_per_vm"),
            (lambda r: r.pop("target"), "missing field target"),
            (lambda r: r["target"].pop("template_mem_bytes"),
             "missing field target.template_mem_bytes"),
            (lambda r: r["machine"].pop("mem_total_bytes"),
             "missing field machine.mem_total_bytes"),
            (lambda r: r["density"]["limits"].pop("pid_max"),
             "missing field density.limits.pid_max"),
            (lambda r: r["density"]["ksm"].pop("pss_per_vm_after"),
             "missing field density.ksm.pss_per_vm_after"),
            (lambda r: r["working_set"]["steps"][1].pop("mem_available_delta_per_vm"),
             "missing field working_set.steps[1].mem_available_delta_per_vm"),
            (lambda r: r["density"]["points"][0].update(live="ten"),
             'field density.points[0].live is not a number: "ten"'),
            (lambda r: r["density"].update(points={}), "field density.points is not a list"),
            (lambda r: r.update(report_version=2), "report_version 2"),
            (lambda r: r.pop("report_version"), "missing field report_version"),
        ]
        for i, (mutate, want) in enumerate(cases):
            r = bench_report()
            mutate(r)
            self.assertDataError([self.write(f"bad{i}.json", r)], "bad", want)

    def test_not_json_empty_absent(self):
        self.assertDataError([self.write("x.json", "{\"report_version\": 1,")], "x.json: not JSON")
        self.assertDataError([self.write("e.json", "")], "e.json: empty")
        self.assertDataError([self.write("l.json", "[1, 2]")], "not a JSON object")
        self.assertDataError([os.path.join(self.tmp.name, "absent.json")],
                             "absent.json: No such file or directory")

    def test_what_the_data_cannot_answer(self):
        self.assertDataError([self.write("nod.json", bench_report(density=False))],
                             "no report has density.points")
        self.assertDataError([self.write("one.json", bench_report(counts=[100]))],
                             "1 point(s), all at 100 live clones")
        self.assertDataError([self.write("noksm.json", bench_report(ksm=False)), "--ksm", "on"],
                             "--ksm on: no report has KSM figures")
        self.assertDataError([self.write("nows.json", bench_report(working_set=False)),
                              "--dirty-pages", "0,1024"], "--dirty-pages 1024: no cost per")
        self.assertDataError([self.write("a.json", bench_report()),
                              self.write("b.json", bench_report(guest="linux"))],
                             "different guests (bare, linux)")
        self.assertDataError([self.write("c.json", bench_report()), "--check",
                              self.write("d.json", bench_report(guest="linux"))],
                             "d.json: a linux guest")
        # Idle clones need no working set.
        rc, out, err = self.run_cli(self.write("nows2.json", bench_report(working_set=False)))
        self.assertEqual(rc, 0, err)
        self.assertIn("not measured (no working_set steps", out)

    def test_bad_usage_is_exit_2(self):
        bench = self.write("bench.json", bench_report())
        for args in ([], [bench, "--host-mem", "12Q"], [bench, "--dirty-pages", "1,,2"],
                     [bench, "--ksm", "maybe"], [bench, "--vcpus", "0"],
                     [bench, "--max-error", "5"], [bench, "--basis", "rss"]):
            rc, out, err = self.run_cli(*args)
            self.assertEqual(rc, 2, f"{args}: {out}{err}")
            self.assertIn("capacity-plan: error:", err)

    def test_help_tells_the_options_and_exit_codes(self):
        rc, out, err = self.run_cli("--help")
        self.assertEqual(rc, 0)
        for s in ("--host-mem", "--reserve", "--dirty-pages", "--ksm", "--vcpus", "--plots",
                  "--check", "--max-error", "--json", "--basis", "--no-limits", "exit status",
                  "KSM factor", "per_vcpu", "not measured"):
            self.assertIn(s, out)


class ReportShape(unittest.TestCase):
    def test_every_field_read_is_written_by_bench_report_cc(self):
        """The script's field names against bench/report.cc: a rename there fails here."""
        with open(os.path.join(ROOT, "bench", "report.cc")) as f:
            source = f.read()
        mod = load_module()
        for path in mod.FIELDS_READ:
            for part in re.split(r"\.|\[\]", path):
                if part:
                    self.assertIn(f'"{part}"', source, f"{path}: {part}")

    def test_synthetic_report_has_report_cc_keys(self):
        """Every key of the synthetic report is one bench/report.cc writes."""
        with open(os.path.join(ROOT, "bench", "report.cc")) as f:
            written = set(re.findall(r'"([a-z_0-9]+)"', f.read()))

        def keys(x):
            if isinstance(x, dict):
                for k, v in x.items():
                    yield k
                    yield from keys(v)
            elif isinstance(x, list):
                for v in x:
                    yield from keys(v)
        extensions = {"vcpus"}
        for k in keys(bench_report(vcpus=2)):
            if k not in extensions:
                self.assertIn(k, written, k)


if __name__ == "__main__":
    unittest.main(verbosity=2)
