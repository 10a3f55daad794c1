# Per-checkpoint metrics (evaluate, hessian) and per-cell pairwise metrics (cka, distance).
# Each rule declares its metric's source file as an input, so editing it reruns the metric.


rule evaluate:
    input:
        checkpoint=f"{RESULTS}/{{cell}}/seed={{seed}}/model.pt",
        code=sources("evaluate"),
    output:
        f"{RESULTS}/{{cell}}/seed={{seed}}/evaluate.json",
    params:
        settings=section("evaluate"),
        data_dir=CONFIG["data_dir"],
        device=CONFIG["device"],
    resources:
        gpu=1 if USE_GPU else 0,
        runtime=runtime("evaluate"),
        mem_mb=memory("evaluate"),
    threads: THREADS
    log:
        f"{RESULTS}/logs/evaluate/{{cell}}/seed={{seed}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/evaluate/{{cell}}/seed={{seed}}.tsv"
    conda:
        "../envs/lltax.yaml"
    shell:
        "lltax evaluate --checkpoint {input.checkpoint:q} --settings {params.settings:q}"
        " --data-dir {params.data_dir:q} --device {params.device} --out {output:q} --threads {threads} > {log:q} 2>&1"


rule hessian:
    input:
        checkpoint=f"{RESULTS}/{{cell}}/seed={{seed}}/model.pt",
        code=sources("hessian"),
    output:
        f"{RESULTS}/{{cell}}/seed={{seed}}/hessian.json",
    params:
        settings=section("hessian"),
        data_dir=CONFIG["data_dir"],
        device=CONFIG["device"],
    resources:
        gpu=1 if USE_GPU else 0,
        runtime=runtime("hessian"),
        mem_mb=memory("hessian"),
    threads: THREADS
    log:
        f"{RESULTS}/logs/hessian/{{cell}}/seed={{seed}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/hessian/{{cell}}/seed={{seed}}.tsv"
    conda:
        "../envs/lltax.yaml"
    shell:
        "lltax hessian --checkpoint {input.checkpoint:q} --settings {params.settings:q}"
        " --data-dir {params.data_dir:q} --device {params.device} --out {output:q} --threads {threads} > {log:q} 2>&1"


rule cka:
    input:
        checkpoints=checkpoints_of_cell,
        code=sources("cka"),
    output:
        f"{RESULTS}/{{cell}}/cka.json",
    params:
        settings=section("cka"),
        data_dir=CONFIG["data_dir"],
        device=CONFIG["device"],
    resources:
        gpu=1 if USE_GPU else 0,
        runtime=runtime("cka"),
        mem_mb=memory("cka"),
    threads: THREADS
    log:
        f"{RESULTS}/logs/cka/{{cell}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/cka/{{cell}}.tsv"
    conda:
        "../envs/lltax.yaml"
    shell:
        "lltax cka --checkpoints {input.checkpoints:q} --settings {params.settings:q}"
        " --data-dir {params.data_dir:q} --device {params.device} --out {output:q} --threads {threads} > {log:q} 2>&1"


rule distance:
    input:
        checkpoints=checkpoints_of_cell,
        code=sources("distance"),
    output:
        f"{RESULTS}/{{cell}}/distance.json",
    params:
        settings=section("distance"),
    threads: THREADS
    log:
        f"{RESULTS}/logs/distance/{{cell}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/distance/{{cell}}.tsv"
    conda:
        "../envs/lltax.yaml"
    shell:
        "lltax distance --checkpoints {input.checkpoints:q} --settings {params.settings:q}"
        " --out {output:q} --threads {threads} > {log:q} 2>&1"
