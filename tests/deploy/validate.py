#!/usr/bin/python3
"""Validates deploy/*.yaml against the Kubernetes API schemas committed in
tests/deploy/schemas (their source: schemas/README.md), strictly, and checks
that the manifests agree with each other and with the natbpf binary.

Usage: tests/deploy/validate.py NATBPF [--self-test] [--containerfile FILE] [YAML...]
  NATBPF       the built binary; its `--help` and `drops --help` (or the
               subcommand the DaemonSet runs) give the options args may use
  YAML...      default: deploy/*.yaml
  --self-test  also checks that broken copies of the manifests are rejected

Schema checks (as kubeconform -strict): the schema is picked by apiVersion and
kind (x-kubernetes-group-version-kind); every object schema listing
properties and no additionalProperties gets additionalProperties: false, so
a misspelled or misplaced field is an error; IntOrString accepts a string
or an integer and Quantity a string or a number, as the API server does.
Duplicate keys in a YAML mapping are errors too (kubectl would keep the last).

Cross-checks: the natbpf container's command line (ENTRYPOINT natbpf + args,
and the Containerfile's CMD) names a subcommand and only options its --help
lists, each option given the value it needs; the probes, the metrics
containerPort and the prometheus.io/port annotation use the --prometheus
ADDR:PORT port; the Service selects the DaemonSet's pods and targets its
metrics port; the ServiceMonitor selects the Service and scrapes a port the
Service names, on the probes' path.
Exits 1 naming file, document, kind/name and the JSON path of each error.
"""
import copy
import glob
import json
import os
import re
import subprocess
import sys

import jsonschema
import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
REF = "#/components/schemas/"
QUANTITY = "io.k8s.apimachinery.pkg.api.resource.Quantity"
SERVICEMONITOR = "com.coreos.monitoring.v1.ServiceMonitor"


class Fail(Exception):
    pass


# ---------------------------------------------------------------- loading

class UniqueKeyLoader(yaml.SafeLoader):
    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep)


def load_manifests(paths):
    """[(path, index, document)] of every non-empty YAML document."""
    docs = []
    for path in paths:
        with open(path) as f:
            try:
                loaded = list(yaml.load_all(f, Loader=UniqueKeyLoader))
            except yaml.YAMLError as e:
                raise Fail(f"{rel(path)}: not valid YAML: {e}")
        docs += [(path, i, d) for i, d in enumerate(loaded) if d is not None]
    return docs


def strict(node):
    """kubeconform's strict mode and its IntOrString/Quantity handling."""
    if isinstance(node, list):
        return [strict(n) for n in node]
    if not isinstance(node, dict):
        return node
    if node.get("format") == "int-or-string":
        return {"oneOf": [{"type": "string"}, {"type": "integer"}]}
    out = {}
    for k, v in node.items():
        if k == "properties" and isinstance(v, dict):  # a map of field names
            out[k] = {field: strict(s) for field, s in v.items()}
        elif k in ("enum", "required", "default", "example") or k.startswith("x-"):
            out[k] = v
        else:
            out[k] = strict(v)
    if "properties" in out and "additionalProperties" not in out:
        out["additionalProperties"] = False
    return out


def load_schemas():
    """(components, {(apiVersion, kind): definition name})"""
    with open(os.path.join(HERE, "schemas", "kubernetes.json")) as f:
        schemas = json.load(f)["components"]["schemas"]
    with open(os.path.join(HERE, "schemas", "servicemonitor.json")) as f:
        sm = json.load(f)
    # The model refers to ObjectMeta by its id in @kubernetes-models' registry.
    sm["properties"]["metadata"] = {"$ref": REF + "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"}
    sm["x-kubernetes-group-version-kind"] = [
        {"group": "monitoring.coreos.com", "version": "v1", "kind": "ServiceMonitor"}]
    schemas[SERVICEMONITOR] = sm
    schemas = {name: strict(s) for name, s in schemas.items()}
    schemas[QUANTITY] = {"oneOf": [{"type": "string"}, {"type": "number"}]}
    kinds = {}
    for name, s in schemas.items():
        for gvk in s.get("x-kubernetes-group-version-kind", []):
            api = f"{gvk['group']}/{gvk['version']}" if gvk["group"] else gvk["version"]
            kinds[(api, gvk["kind"])] = name
    return {"schemas": schemas}, kinds


# ---------------------------------------------------------------- schema check

def json_path(parts):
    out = "$"
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else f".{p}"
    return out


def where(path, index, doc):
    kind = doc.get("kind", "?") if isinstance(doc, dict) else "?"
    name = (doc.get("metadata") or {}).get("name", "?") if isinstance(doc, dict) else "?"
    return f"{rel(path)}: document {index} ({kind} {name})"


def schema_errors(components, kinds, path, index, doc):
    if not isinstance(doc, dict):
        return [f"{where(path, index, doc)}: not a mapping"]
    key = (doc.get("apiVersion"), doc.get("kind"))
    if key not in kinds:
        return [f"{where(path, index, doc)}: no schema for apiVersion {key[0]!r} kind {key[1]!r} "
                "(tests/deploy/schemas has only the kinds fetch_schemas.sh extracts)"]
    root = {"$ref": REF + kinds[key], "components": components}
    validator = jsonschema.Draft7Validator(root)
    errors = sorted(validator.iter_errors(doc), key=lambda e: list(map(str, e.absolute_path)))
    return [f"{where(path, index, doc)}: at {json_path(e.absolute_path)}: {e.message}" for e in errors]


# ---------------------------------------------------------------- natbpf help

OPTION = re.compile(r"^\s+(-\S+?)(?: ([A-Z][A-Z0-9_]*(?::\S+)?))?(?:\s{2,}|$)")


def natbpf_help(binary, *sub):
    try:
        out = subprocess.run([binary, *sub, "--help"], capture_output=True, text=True,
                             timeout=20, check=True).stdout
    except (OSError, subprocess.SubprocessError) as e:
        raise Fail(f"cannot run {binary} {' '.join(sub)} --help: {e}")
    return out


def parse_help(text):
    """({option name: takes a value}, [subcommand names]) of CLI11 help text."""
    options, subcommands, section = {}, [], None
    for line in text.splitlines():
        if line and not line[0].isspace():
            section = line.rstrip(":")
            continue
        if section == "Options":
            m = OPTION.match(line)
            if m:
                for name in m.group(1).split(","):
                    options[name] = m.group(2) is not None
        elif section == "Subcommands" and line.strip():
            subcommands.append(line.split()[0])
    return options, subcommands


class Natbpf:
    def __init__(self, binary):
        self.binary = binary
        _, self.subcommands = parse_help(natbpf_help(binary))
        if not self.subcommands:
            raise Fail(f"{binary} --help lists no subcommands")
        self.options = {}

    def check_args(self, argv, what):
        """Errors of one natbpf command line, and its {option: value}."""
        if not argv or argv[0] not in self.subcommands:
            return [f"{what}: {argv[:1]} is not a natbpf subcommand "
                    f"({self.binary} --help lists {', '.join(self.subcommands)})"], {}
        sub = argv[0]
        if sub not in self.options:
            self.options[sub], _ = parse_help(natbpf_help(self.binary, sub))
        known, errors, given, i = self.options[sub], [], {}, 1
        while i < len(argv):
            arg = str(argv[i])
            name, eq, value = arg.partition("=")
            if not arg.startswith("-"):
                errors.append(f"{what}: unexpected argument {arg!r} (natbpf {sub} takes no positional arguments here)")
            elif name not in known:
                errors.append(f"{what}: unknown option {name!r}: `{self.binary} {sub} --help` does not list it")
            elif known[name] and not eq:
                if i + 1 >= len(argv) or str(argv[i + 1]).startswith("-"):
                    errors.append(f"{what}: option {name} needs a value")
                else:
                    i += 1
                    given[name] = str(argv[i])
            elif not known[name] and eq:
                errors.append(f"{what}: option {name} is a flag and takes no value")
            else:
                given[name] = value if eq else True
            i += 1
        return errors, given


# ---------------------------------------------------------------- cross-checks

def find(docs, kind):
    return [(p, i, d) for p, i, d in docs if isinstance(d, dict) and d.get("kind") == kind]


def port_number(container, port):
    """A probe's or Service's port (number or name) as the container's number."""
    if isinstance(port, int):
        return port
    for p in container.get("ports") or []:
        if p.get("name") == port:
            return p.get("containerPort")
    return None


def check_daemonset(natbpf, path, index, ds):
    at = where(path, index, ds)
    errors, pod = [], ds["spec"]["template"]
    containers = [c for c in pod["spec"]["containers"] if "natbpf" in str(c.get("image", ""))]
    if len(containers) != 1:
        return [f"{at}: expected one container running a natbpf image, found {len(containers)}"], None
    c = containers[0]
    cpath = f"{at}: $.spec.template.spec.containers[{pod['spec']['containers'].index(c)}]"
    if c.get("command"):
        errors.append(f"{cpath}.command: not expected (the image's ENTRYPOINT is natbpf; put the command line in args)")
    errs, given = natbpf.check_args(c.get("args") or [], f"{cpath}.args")
    errors += errs
    addr = given.get("--prometheus")
    m = re.fullmatch(r"(.*):(\d+)", addr) if isinstance(addr, str) else None
    if not m:
        errors.append(f"{cpath}.args: no --prometheus ADDR:PORT (the probes and the Service need the exporter)")
        return errors, c
    port = int(m.group(2))
    for probe in ("readinessProbe", "livenessProbe"):
        get = (c.get(probe) or {}).get("httpGet")
        if not get:
            errors.append(f"{cpath}.{probe}: no httpGet probe of the exporter")
        elif port_number(c, get.get("port")) != port:
            errors.append(f"{cpath}.{probe}.httpGet.port: {get.get('port')!r} is not the --prometheus port {port}")
    named = [p for p in c.get("ports") or [] if p.get("containerPort") == port]
    if not named:
        errors.append(f"{cpath}.ports: no containerPort {port} (the --prometheus port)")
    ann = (pod.get("metadata") or {}).get("annotations") or {}
    if "prometheus.io/port" in ann and ann["prometheus.io/port"] != str(port):
        errors.append(f"{at}: $.spec.template.metadata.annotations['prometheus.io/port']: "
                      f"{ann['prometheus.io/port']!r} is not the --prometheus port {port}")
    return errors, c


def check_containerfile(natbpf, containerfile):
    with open(containerfile) as f:
        text = f.read()
    cmd = re.findall(r"^CMD\s+(\[.*\])\s*$", text, re.M)
    entry = re.findall(r"^ENTRYPOINT\s+(\[.*\])\s*$", text, re.M)
    if not entry or json.loads(entry[-1]) != ["natbpf"]:
        return [f"{rel(containerfile)}: ENTRYPOINT is not [\"natbpf\"] (the DaemonSet's args assume it)"]
    if not cmd:
        return []
    return natbpf.check_args(json.loads(cmd[-1]), f"{rel(containerfile)}: CMD")[0]


def selects(selector, labels):
    return bool(selector) and all((labels or {}).get(k) == v for k, v in selector.items())


def check_service(docs, ds, container, path, index, svc):
    at, errors = where(path, index, svc), []
    pod = ds[2]["spec"]["template"]
    if svc["metadata"].get("namespace") != ds[2]["metadata"].get("namespace"):
        errors.append(f"{at}: $.metadata.namespace: not the DaemonSet's namespace")
    if not selects(svc["spec"].get("selector"), (pod.get("metadata") or {}).get("labels")):
        errors.append(f"{at}: $.spec.selector: does not select the DaemonSet's pods (labels of $.spec.template.metadata)")
    for n, p in enumerate(svc["spec"].get("ports") or []):
        target = p.get("targetPort", p.get("port"))
        ports = [q.get("containerPort") for q in (container or {}).get("ports") or []]
        if container is not None and port_number(container, target) not in ports:
            errors.append(f"{at}: $.spec.ports[{n}].targetPort: {target!r} is not a port of the natbpf container")
    return errors


def check_servicemonitor(docs, container, path, index, sm):
    at, errors = where(path, index, sm), []
    services = [s for _, _, s in find(docs, "Service")
                if s["metadata"].get("namespace") == sm["metadata"].get("namespace")
                and selects((sm["spec"].get("selector") or {}).get("matchLabels"), s["metadata"].get("labels"))]
    if len(services) != 1:
        return [f"{at}: $.spec.selector.matchLabels: selects {len(services)} Services of deploy/ in its namespace, not one"]
    names = [p.get("name") for p in services[0]["spec"].get("ports") or []]
    probe_path = (((container or {}).get("readinessProbe") or {}).get("httpGet") or {}).get("path")
    for n, ep in enumerate(sm["spec"].get("endpoints") or []):
        if ep.get("port") not in names:
            errors.append(f"{at}: $.spec.endpoints[{n}].port: {ep.get('port')!r} is not a port name of "
                          f"Service {services[0]['metadata']['name']} ({', '.join(map(str, names))})")
        if probe_path and ep.get("path", "/metrics") != probe_path:
            errors.append(f"{at}: $.spec.endpoints[{n}].path: {ep.get('path')!r} is not the probes' path {probe_path!r}")
    return errors


def cross_errors(natbpf, docs, containerfile):
    errors = check_containerfile(natbpf, containerfile) if containerfile else []
    daemonsets = find(docs, "DaemonSet")
    if len(daemonsets) != 1:
        return errors + [f"deploy manifests: expected one DaemonSet, found {len(daemonsets)}"]
    errs, container = check_daemonset(natbpf, *daemonsets[0])
    errors += errs
    for p, i, svc in find(docs, "Service"):
        errors += check_service(docs, daemonsets[0], container, p, i, svc)
    for p, i, sm in find(docs, "ServiceMonitor"):
        errors += check_servicemonitor(docs, container, p, i, sm)
    return errors


def all_errors(components, kinds, natbpf, docs, containerfile):
    errors = []
    for p, i, d in docs:
        errors += schema_errors(components, kinds, p, i, d)
    if errors:  # cross-checks assume the shapes the schemas guarantee
        return errors
    return cross_errors(natbpf, docs, containerfile)


# ---------------------------------------------------------------- self-test

def self_test(components, kinds, natbpf, docs, containerfile):
    """Each broken copy must be rejected with the expected message."""
    def pod(d):
        return d[kind_index(d, "DaemonSet")][2]["spec"]["template"]["spec"]

    def kind_index(d, kind):
        return next(n for n, (_, _, x) in enumerate(d) if x.get("kind") == kind)

    def doc(d, kind):
        return d[kind_index(d, kind)][2]

    def typo(d):
        pod(d)["hostNetwrok"] = pod(d).pop("hostNetwork")

    def caps_in_pod(d):
        pod(d)["securityContext"] = {"capabilities": pod(d)["containers"][0]["securityContext"].pop("capabilities")}

    def caps_add_flat(d):
        sc = pod(d)["containers"][0]["securityContext"]
        sc["add"] = sc["capabilities"].pop("add")

    def port_string(d):
        pod(d)["containers"][0]["ports"][0]["containerPort"] = "9477"

    def svc_port_string(d):
        doc(d, "Service")["spec"]["ports"][0]["port"] = "9477"

    def unknown_option(d):
        pod(d)["containers"][0]["args"].append("--prometheus-port")

    def missing_value(d):
        pod(d)["containers"][0]["args"] = ["drops", "--prometheus"]

    def probe_port(d):
        c = pod(d)["containers"][0]
        c["args"] = ["drops", "--prometheus", "0.0.0.0:9478"]

    def sm_port(d):
        doc(d, "ServiceMonitor")["spec"]["endpoints"][0]["port"] = "http-metrics"

    def sm_typo(d):
        ep = doc(d, "ServiceMonitor")["spec"]["endpoints"][0]
        ep["intervall"] = ep.pop("interval")

    def svc_target(d):
        doc(d, "Service")["spec"]["ports"][0]["targetPort"] = "metric"

    def svc_selector(d):
        doc(d, "Service")["spec"]["selector"] = {"app": "natbpf"}

    cases = [
        (typo, "at $.spec.template.spec: Additional properties are not allowed ('hostNetwrok' was unexpected)"),
        (caps_in_pod, "at $.spec.template.spec.securityContext: Additional properties are not allowed ('capabilities' was unexpected)"),
        (caps_add_flat, "at $.spec.template.spec.containers[0].securityContext: Additional properties are not allowed ('add' was unexpected)"),
        (port_string, "at $.spec.template.spec.containers[0].ports[0].containerPort: '9477' is not of type 'integer'"),
        (svc_port_string, "(Service natbpf): at $.spec.ports[0].port: '9477' is not of type 'integer'"),
        (unknown_option, "args: unknown option '--prometheus-port'"),
        (missing_value, "args: option --prometheus needs a value"),
        (probe_port, "readinessProbe.httpGet.port: 9477 is not the --prometheus port 9478"),
        (sm_port, "$.spec.endpoints[0].port: 'http-metrics' is not a port name of Service natbpf"),
        (sm_typo, "(ServiceMonitor natbpf): at $.spec.endpoints[0]: Additional properties are not allowed ('intervall' was unexpected)"),
        (svc_target, "(Service natbpf): $.spec.ports[0].targetPort: 'metric' is not a port of the natbpf container"),
        (svc_selector, "$.spec.selector: does not select the DaemonSet's pods"),
    ]
    failed = 0
    for breaker, expected in cases:
        broken = copy.deepcopy(docs)
        breaker(broken)
        errors = all_errors(components, kinds, natbpf, broken, containerfile)
        if not any(expected in e for e in errors):
            failed += 1
            print(f"validate --self-test: {breaker.__name__}: expected an error containing\n  {expected}\n"
                  f"got:\n  " + "\n  ".join(errors or ["(no error)"]), file=sys.stderr)
    if failed:
        raise Fail(f"--self-test: {failed} of {len(cases)} broken copies not rejected as expected")
    print(f"validate --self-test: {len(cases)} broken copies rejected as expected")


def rel(path):
    path = os.path.abspath(path)
    return os.path.relpath(path, ROOT) if path.startswith(ROOT + os.sep) else path


def main(argv):
    args, selftest, containerfile = [], False, os.path.join(ROOT, "deploy", "Containerfile")
    it = iter(argv)
    for a in it:
        if a == "--self-test":
            selftest = True
        elif a == "--containerfile":
            containerfile = next(it, None)
        elif a.startswith("-"):
            sys.exit(__doc__)
        else:
            args.append(a)
    if not args:
        sys.exit(__doc__)
    binary, paths = args[0], args[1:] or sorted(glob.glob(os.path.join(ROOT, "deploy", "*.yaml")))
    try:
        natbpf = Natbpf(binary)
        components, kinds = load_schemas()
        docs = load_manifests(paths)
        errors = all_errors(components, kinds, natbpf, docs, containerfile)
        if errors:
            print("\n".join("validate: " + e for e in errors), file=sys.stderr)
            return 1
        print(f"validate: {len(docs)} documents of {', '.join(rel(p) for p in paths)} valid against "
              f"tests/deploy/schemas (strict) and consistent with {binary} and {rel(containerfile)}")
        if selftest:
            self_test(components, kinds, natbpf, docs, containerfile)
    except Fail as e:
        print(f"validate: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
