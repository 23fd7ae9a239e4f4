#!/usr/bin/env python3
"""Regenerate src/validate/kubernetes-schemas.json, the built-in Kubernetes API schemas kpin
validates rendered objects against (see docs/validation.md for why this source).

Input: the `kubernetes-validate` wheel from PyPI, which ships the JSON schemas that
openapi2jsonschema derives from Kubernetes' own OpenAPI document (api/openapi-spec/swagger.json
of kubernetes/kubernetes), one directory per minor version; kpin uses the `-local-strict` ones
(unknown fields refused, as the API server's server-side apply refuses them).

    pip download --no-deps -d /tmp/kv kubernetes-validate==1.37.0
    python3 tools/kubernetes-schemas.py /tmp/kv/kubernetes_validate-1.37.0-py3-none-any.whl

Output: one JSON file holding, per minor version, the map from `apiVersion/kind` to its
definition and from definition name to a shared, content-addressed definition (most
definitions are identical across versions). Descriptions and the keys kpin does not use are
dropped. The script is deterministic: the same wheel gives the same bytes.
"""

import hashlib
import json
import re
import sys
import zipfile

OUT = "src/validate/kubernetes-schemas.json"
# Keys kpin's validator reads (src/validate/schema.rs); everything else is dropped.
KEEP = {
    "type", "properties", "additionalProperties", "items", "required", "enum", "$ref", "oneOf",
    "format", "x-kubernetes-list-type", "x-kubernetes-list-map-keys",
}
FORMATS = {"int32", "int64"}
REF = re.compile(r"^#/\$defs/(.+)$")


def strip(node):
    if isinstance(node, list):
        return [strip(v) for v in node]
    if not isinstance(node, dict):
        return node
    out = {}
    for key, value in node.items():
        if key not in KEEP:
            continue
        if key == "properties":
            out[key] = {k: strip(v) for k, v in value.items()}
        elif key == "$ref":
            m = REF.match(value)
            if not m:
                raise SystemExit(f"unexpected $ref {value}")
            out[key] = m.group(1)
        elif key == "format":
            if value in FORMATS:
                out[key] = value
        else:
            out[key] = strip(value)
    return out


def main():
    wheel = sys.argv[1]
    digest = hashlib.sha256(open(wheel, "rb").read()).hexdigest()
    z = zipfile.ZipFile(wheel)
    pattern = re.compile(r"kubernetes_validate/kubernetes-json-schema/v(\d+)\.(\d+)\.0-local-strict/_definitions\.json$")
    package_version = None
    for name in z.namelist():
        m = re.match(r"kubernetes_validate-([^/]+)\.dist-info/METADATA$", name)
        if m:
            package_version = m.group(1)
    versions = {}
    definitions = {}
    for name in sorted(z.namelist()):
        m = pattern.search(name)
        if not m:
            continue
        minor = f"{m.group(1)}.{m.group(2)}"
        defs = json.loads(z.read(name))["$defs"]
        kinds = {}
        names = {}
        for def_name in sorted(defs):
            schema = defs[def_name]
            gvks = schema.get("x-kubernetes-group-version-kind") or []
            # Objects one can apply have apiVersion, kind and metadata; list types and
            # options (DeleteOptions carries many GVKs) are not applied.
            props = schema.get("properties", {})
            if len(gvks) == 1 and "metadata" in props and not def_name.endswith("List"):
                g = gvks[0]
                api_version = f"{g['group']}/{g['version']}" if g["group"] else g["version"]
                kinds[f"{api_version}/{g['kind']}"] = def_name
            body = json.dumps(strip(schema), sort_keys=True, separators=(",", ":"))
            key = hashlib.sha256(body.encode()).hexdigest()[:12]
            definitions[key] = json.loads(body)
            names[def_name] = key
        versions[minor] = {"kinds": kinds, "definitions": names}
    if not versions:
        raise SystemExit("no *-local-strict/_definitions.json in the wheel")
    doc = {
        "source": {
            "package": "kubernetes-validate (PyPI)",
            "version": package_version,
            "sha256": digest,
            "schemas": "kubernetes-json-schema/v<minor>.0-local-strict/_definitions.json",
            "origin": "openapi2jsonschema of api/openapi-spec/swagger.json, kubernetes/kubernetes",
        },
        "versions": versions,
        "definitions": definitions,
    }
    with open(OUT, "w") as f:
        json.dump(doc, f, sort_keys=True, separators=(",", ":"))
        f.write("\n")
    print(f"{OUT}: {len(versions)} versions ({', '.join(versions)}), {len(definitions)} definitions")


if __name__ == "__main__":
    main()
