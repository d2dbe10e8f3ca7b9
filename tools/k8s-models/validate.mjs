// Validates prometheus-operator objects (ServiceMonitor, PodMonitor, PrometheusRule, ...) against the CRD models of
// @kubernetes-models/prometheus-operator. Input: a JSON array of objects on stdin. Output: one JSON line per object,
// {kind, name, ok, error}. Exit status 1 when any object is invalid or of a kind the package does not model.
import { readFileSync } from "node:fs";
import * as v1 from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1";

let failed = false;
for (const obj of JSON.parse(readFileSync(0, "utf8"))) {
  const result = { kind: obj.kind, name: obj.metadata?.name ?? "", ok: true, error: null };
  const Model = obj.apiVersion === "monitoring.coreos.com/v1" ? v1[obj.kind] : undefined;
  try {
    if (typeof Model !== "function") throw new Error(`no model for ${obj.apiVersion} ${obj.kind}`);
    new Model(obj).validate();
  } catch (err) {
    result.ok = false;
    result.error = String(err?.message ?? err);
    failed = true;
  }
  process.stdout.write(JSON.stringify(result) + "\n");
}
process.exit(failed ? 1 : 0);
