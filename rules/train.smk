# One job per cell trains its seeds in turn (one process: start-up and imports are paid once;
# each seed's model and numbers are those of a job of its own, bit for bit); with
# cluster.seeds_per_job 1, one job per seed (the same numbers).


rule train:
    input:
        code=sources("train"),
    output:
        models=job_files("train", "model.pt"),
        summaries=job_files("train", "train.json"),
    log:
        cell_log("train"),
    benchmark:
        cell_benchmark("train")
    wildcard_constraints:
        seed=r"\d+",
    conda:
        "../envs/lltax.yaml"
    threads: THREADS
    resources:
        **torch_resources("train"),
    params:
        **TORCH_JOB,
        dataset=section("dataset"),
        # model.options (a transformer's layers, heads, ...) travel with the name only when set.
        model=section("model") if CONFIG["model"]["options"] else CONFIG["model"]["name"],
        settings=section("train"),
        seeds=job_seeds,
        out_dirs=lambda wildcards, output: [str(Path(path).parent) for path in output.models],
    shell:
        "lltax train --cell {wildcards.cell:q} --seeds {params.seeds:q} --dataset-settings {params.dataset:q}"
        " --model {params.model:q} --settings {params.settings:q} --data-dir {params.data_dir:q}"
        " --device {params.device:q} --out-dir {params.out_dirs:q} --threads {threads:q} > {log:q} 2>&1"
