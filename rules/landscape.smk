# Classic landscape pictures per cell: 1D interpolation between the first two seeds and a 2D
# filter-normalized surface around the first seed (Li et al. 2018).

LANDSCAPE_OUTPUTS = (
    [f"{RESULTS}/{cell}/landscape.nc" for cell in CELLS]
    if CONFIG["landscape"]["enabled"] and len(SEEDS) >= 2
    else []
)


rule landscape:
    input:
        checkpoint_a=f"{RESULTS}/{{cell}}/seed={SEEDS[0]}/model.pt",
        checkpoint_b=f"{RESULTS}/{{cell}}/seed={SEEDS[-1] if len(SEEDS) < 2 else SEEDS[1]}/model.pt",
        code=SRC / "landscape.py",
    output:
        data=f"{RESULTS}/{{cell}}/landscape.nc",
        figure=report(
            f"{RESULTS}/{{cell}}/landscape.png",
            caption="../report/landscape.rst",
            category="Landscapes",
            labels=lambda wildcards: {"cell": wildcards.cell},
        ),
    params:
        settings=section("landscape", drop=("enabled",)),
        data_dir=CONFIG["data_dir"],
        device=CONFIG["device"],
    resources:
        gpu=1 if USE_GPU else 0,
    log:
        f"{RESULTS}/logs/landscape/{{cell}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/landscape/{{cell}}.tsv"
    shell:
        "lltax landscape --checkpoints {input.checkpoint_a:q} {input.checkpoint_b:q}"
        " --settings {params.settings:q} --data-dir {params.data_dir:q} --device {params.device}"
        " --out {output.data:q} --figure {output.figure:q} > {log} 2>&1"
