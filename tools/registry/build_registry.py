"""Builds data/registry/models.json (visiongen's capability registry, schema
version 1) from the research file ../shared/registry/models.json: keeps the
facts and their sources, drops the prose, marks what the research could not
verify, and says which engine of this build runs each model.

    python3 tools/registry/build_registry.py ../shared/registry/models.json data/registry/models.json
"""
import json
import re
import sys

# Models this build's engines run (SD 1.x / 2.x / XL UNets, FLUX.1 and SD3/3.5 transformers).
RUNNABLE = {"sd15": "cpu", "sd15_inpaint": "cpu", "sd21": "cpu", "sd_turbo": "cpu",
            "sdxl_base": "cpu", "sdxl_refiner": "cpu", "sdxl_turbo": "cpu", "sdxl_inpaint": "cpu", "sdxl_lightning": "cpu",
            "flux1_schnell": "cpu", "flux1_dev": "cpu", "sd3_medium": "cpu", "sd35_medium": "cpu", "sd35_large": "cpu",
            "sd35_large_turbo": "cpu"}
TASKS = {"inpainting": "inpaint"}


def slug(s):
    return re.sub(r"[^a-z0-9]+", "-", (s or "").lower()).strip("-")


def repo_ids(m):
    ids = [m["repo_id"]] if m.get("repo_id") else []
    for alt in m.get("alt_repo_ids") or []:
        r = alt.split(" ")[0]
        if "/" in r and r not in ids:
            ids.append(r)
    return ids


def num(v):
    return v if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def convert(m):
    s = m.get("sampling") or {}
    res = m.get("resolution") or {}
    vid = m.get("video") or {}
    lic = m.get("license") or {}
    native = res.get("native") or [None, None]
    guidance = s.get("guidance_type")
    entry = {
        "id": m["id"],
        "ids": repo_ids(m),
        "name": m.get("name"),
        "family": slug(m.get("family")),
        "kind": m.get("kind"),
        "architecture": m.get("architecture"),
        "tasks": sorted({TASKS.get(t, t) for t in (m.get("tasks") or [])}),
        "defaults": {
            "width": native[0] if isinstance(native, list) else None,
            "height": native[1] if isinstance(native, list) and len(native) > 1 else None,
            "steps": num(s.get("default_steps")),
            "guidance_kind": {"cfg": "cfg", "distilled": "distilled", "none": "none"}.get(guidance, guidance),
            "guidance_scale": num(s.get("guidance_scale")),
            "scheduler": s.get("scheduler"),
            "prediction_type": s.get("prediction_type"),
            "flow_shift": num(s.get("flow_shift")),
            "fps": num(vid.get("fps")),
            "frames": num(vid.get("default_frames")),
            "frames_rule": vid.get("frames_rule"),
            "max_frames": num(vid.get("max_frames")),
        },
        "limits": {"size_multiple": num(res.get("multiple_of"))},
        "license": {"id": lic.get("id"), "gated": lic.get("gated"), "commercial_use": lic.get("commercial_use")},
        "files": {"full_checkpoint_16bit_gb": num((m.get("weights") or {}).get("full_checkpoint_16bit_gb")),
                  "denoiser_16bit_gb": num((m.get("weights") or {}).get("denoiser_16bit_gb"))},
        "engine": RUNNABLE.get(m["id"]),
        "unverified": m.get("unverified") or [],
        "sources": m.get("sources") or {},
    }
    return entry


def main():
    src, dst = sys.argv[1], sys.argv[2]
    models = [convert(m) for m in json.load(open(src))]
    out = {"schema_version": 1, "source": "shared/registry/models.json (research notes with sources)", "models": models}
    with open(dst, "w") as f:
        json.dump(out, f, indent=1, sort_keys=True, ensure_ascii=False)
        f.write("\n")
    print(f"{len(models)} models -> {dst}")


if __name__ == "__main__":
    main()
