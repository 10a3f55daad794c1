# Checkpoints trained elsewhere (config checkpoints.path): one job per cell records its seeds'
# files (lltax import) in place of training them. The files are inputs, so a file replaced by
# newer weights reruns its cell's import and every metric that depends on it; their content
# checksums are a param, so new content under an old modification time reruns it too.


rule import_checkpoints:
    input:
        files=external_files,
        code=sources("import"),
    output:
        records=per_seed("checkpoint.json"),
        summaries=per_seed("train.json"),
    log:
        cell_log("import"),
    benchmark:
        cell_benchmark("import")
    conda:
        "../envs/lltax.yaml"
    threads: THREADS
    resources:
        **torch_resources("import"),
    params:
        **TORCH_JOB,
        dataset=section("dataset"),
        # model.options (a transformer's layers, heads, ...) travel with the name only when set.
        model=section("model") if CONFIG["model"]["options"] else CONFIG["model"]["name"],
        settings=section("train"),
        formats=section("checkpoints", drop=("path",)),
        seeds=[str(seed) for seed in SEEDS],
        # By content: a file replaced under its old modification time reruns the import.
        file_sha256=external_checksums,
        out_dirs=lambda wildcards, output: [str(Path(path).parent) for path in output.records],
    shell:
        "lltax import --cell {wildcards.cell:q} --seeds {params.seeds:q} --files {input.files:q}"
        " --dataset-settings {params.dataset:q} --model {params.model:q} --settings {params.settings:q}"
        " --checkpoint-settings {params.formats:q} --data-dir {params.data_dir:q} --device {params.device:q}"
        " --out-dir {params.out_dirs:q} --threads {threads:q} > {log:q} 2>&1"
