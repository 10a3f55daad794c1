# Classic landscape pictures per cell: 1D interpolation between the first two seeds and a 2D
# filter-normalized surface around the first seed (Li et al. 2018).


rule landscape:
    input:
        checkpoints=lambda wildcards: [f"{RESULTS}/{wildcards.cell}/seed={seed}/{CHECKPOINT}" for seed in LANDSCAPE_SEEDS],
        code=sources("landscape"),
    output:
        data=f"{RESULTS}/{{cell}}/landscape.nc",
        figure=report(
            f"{RESULTS}/{{cell}}/landscape.png",
            caption="../report/landscape.rst",
            category="Landscapes",
            labels=lambda wildcards: {"cell": wildcards.cell},
        ),
    log:
        cell_log("landscape"),
    benchmark:
        cell_benchmark("landscape")
    conda:
        "../envs/lltax.yaml"
    threads: THREADS
    resources:
        **torch_resources("landscape"),
    params:
        **TORCH_JOB,
        settings=section("landscape", drop=("enabled",)),
    shell:
        "lltax landscape --checkpoints {input.checkpoints:q}"
        " --settings {params.settings:q} --data-dir {params.data_dir:q} --device {params.device:q}"
        " --out {output.data:q} --figure {output.figure:q} --threads {threads:q} > {log:q} 2>&1"
