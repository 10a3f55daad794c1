# Fast geometric ensembling per cell (config fge.enabled): from the cell's first seed, against
# one model and the cell's independent seeds ensembled.


rule fge:
    input:
        checkpoints=per_seed(CHECKPOINT),
        # The first curve, for the ensemble along it (none when curves are off).
        curves=per_pair("curve.pt")[:1],
        code=sources("fge"),
    output:
        f"{RESULTS}/{{cell}}/fge.json",
    log:
        cell_log("fge"),
    benchmark:
        cell_benchmark("fge")
    conda:
        "../envs/lltax.yaml"
    threads: THREADS
    resources:
        **torch_resources("fge"),
    params:
        **TORCH_JOB,
        settings=section("fge", drop=("enabled",)),
    shell:
        "lltax fge --checkpoints {input.checkpoints:q} --settings {params.settings:q}"
        " --data-dir {params.data_dir:q} --device {params.device:q} --out {output:q} --threads {threads:q}"
        + (" --curves {input.curves:q}" if CURVE_PAIRS else "")
        + " > {log:q} 2>&1"
