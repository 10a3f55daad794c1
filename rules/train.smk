rule train:
    input:
        code=sources("train"),
    output:
        model=f"{RESULTS}/{{cell}}/seed={{seed}}/model.pt",
        summary=f"{RESULTS}/{{cell}}/seed={{seed}}/train.json",
    params:
        dataset=section("dataset"),
        model=CONFIG["model"]["name"],
        settings=section("train"),
        data_dir=CONFIG["data_dir"],
        device=CONFIG["device"],
        out_dir=lambda wildcards, output: Path(output.model).parent,
    resources:
        gpu=1 if USE_GPU else 0,
        runtime=runtime("train"),
        mem_mb=memory("train"),
    threads: THREADS
    log:
        f"{RESULTS}/logs/train/{{cell}}/seed={{seed}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/train/{{cell}}/seed={{seed}}.tsv"
    conda:
        "../envs/lltax.yaml"
    shell:
        "lltax train --cell {wildcards.cell:q} --seed {wildcards.seed} --dataset {params.dataset:q}"
        " --model {params.model} --settings {params.settings:q} --data-dir {params.data_dir:q}"
        " --device {params.device} --out-dir {params.out_dir:q} --threads {threads} > {log:q} 2>&1"
