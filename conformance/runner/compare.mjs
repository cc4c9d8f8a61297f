// Compares the conformance suite's results directly against the fixture and through the
// gateway: `node compare.mjs OUT` reads OUT/{direct,gateway}/<run>/server-<scenario>-<time>/checks.json
// and prints, per run, the scenarios passing and the successful checks on both sides, then
// every scenario that differs (passing on one side only, or with another number of successful
// checks: a gateway that drops a capability can "pass" a scenario that then skips its checks),
// with the gateway's failures. Exits 1 when any scenario does worse through the gateway (fails
// where it passes directly, or has fewer successful checks); one that does better (the gateway
// answers what the upstream gets wrong) is shown, and does not fail the run.

import { readdirSync, readFileSync, existsSync } from "node:fs";
import path from "node:path";

const out = process.argv[2];
const RUNS = ["v01", "2025-11-25", "2026-07-28", "extensions"];

/** Scenario name -> { passed, successes, failures: [messages] } for one side of one run. */
function load(dir) {
  const scenarios = new Map();
  if (!existsSync(dir)) return scenarios;
  for (const entry of readdirSync(dir)) {
    const file = path.join(dir, entry, "checks.json");
    if (!existsSync(file)) continue;
    const name = entry.replace(/^server-/, "").replace(/-\d{4}-\d\d-\d\dT.*$/, "");
    const checks = JSON.parse(readFileSync(file, "utf8"));
    const failures = checks.filter((c) => c.status === "FAILURE");
    scenarios.set(name, {
      passed: failures.length === 0,
      successes: checks.filter((c) => c.status === "SUCCESS").length,
      failures: failures.map((c) => `${c.id}: ${(c.errorMessage ?? "").slice(0, 160)}`),
    });
  }
  return scenarios;
}

const missing = { passed: false, successes: 0, failures: ["(not run)"] };
const totals = (side) => {
  const all = [...side.values()];
  return `${all.filter((s) => s.passed).length}/${all.length} (${all.reduce((n, s) => n + s.successes, 0)} checks)`;
};
const describe = (s) => `${s.passed ? "pass" : "FAIL"} ${String(s.successes).padStart(3)} checks`;

/** How the gateway's run of a scenario compares with the direct one. */
function verdict(d, g) {
  if (d.passed === g.passed && d.successes === g.successes) return "same";
  // Worse: it fails where the upstream passes, or passes with fewer successful checks (a
  // capability it dropped made the scenario skip them).
  if ((d.passed && !g.passed) || g.successes < d.successes) return "worse";
  return "better";
}

let worse = 0;
let better = 0;
const summary = [];
for (const run of RUNS) {
  const direct = load(path.join(out, "direct", run));
  const gateway = load(path.join(out, "gateway", run));
  if (direct.size === 0 && gateway.size === 0) continue;
  summary.push(`| ${run.padEnd(10)} | ${totals(direct).padEnd(20)} | ${totals(gateway).padEnd(20)} |`);
  const names = [...new Set([...direct.keys(), ...gateway.keys()])].sort();
  const rows = [];
  for (const name of names) {
    const d = direct.get(name) ?? missing;
    const g = gateway.get(name) ?? missing;
    const v = verdict(d, g);
    if (v === "same") continue;
    if (v === "worse") worse++;
    else better++;
    rows.push(`  ${name.padEnd(46)} direct ${describe(d)} | gateway ${describe(g)}${v === "better" ? "  (gateway better)" : ""}`);
    for (const failure of g.failures) rows.push(`      ${failure}`);
  }
  if (rows.length) console.log(`\n${run}: scenarios that differ\n${rows.join("\n")}`);
}
console.log(`\n| suite      | direct               | through Preloop      |\n|------------|----------------------|----------------------|\n${summary.join("\n")}`);
if (worse) console.log(`\n${worse} scenarios do worse through the gateway.`);
else console.log("\nNo scenario does worse through the gateway.");
if (better) console.log(`${better} scenarios do better through the gateway than directly.`);
process.exit(worse ? 1 : 0);
