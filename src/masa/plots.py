"""The report's figures. Each function takes plain data (tables, search records) and writes one PNG.

Written for a reader who has not seen the code: titles say what is compared, axes carry units, intervals
are drawn, and text sizes stay legible when the HTML report scales the image down.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pandas as pd


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: str) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    _pyplot().close(fig)


def wrapped(label: str, width: int = 28) -> str:
    """A long label (the generated-games environment label runs to 80 characters) on lines of ``width``, so
    neighbouring tick labels and titles of side-by-side panels do not run into each other."""
    return "\n".join(textwrap.wrap(label, width)) or label


def _min_span(ax: Any, span: float = 0.1) -> None:
    """Keep at least ``span`` of reward on the y axis, so equal scores do not look like large swings."""
    low, high = ax.get_ylim()
    if high - low < span:
        middle = (low + high) / 2
        ax.set_ylim(middle - span / 2, middle + span / 2)


def plot_rewards(df: pd.DataFrame, path: str) -> None:
    """Bars: mean held-out reward per method, grouped by (backbone, environment label), 95% intervals."""
    plt = _pyplot()
    groups = list(dict.fromkeys(zip(df["backbone"], df["env_label"], strict=True)))
    methods = list(dict.fromkeys(df["method"]))
    width = 0.8 / max(1, len(methods))
    fig, ax = plt.subplots(figsize=(max(7, 1.0 + 0.45 * len(methods) * len(groups)), 4.5))
    colors = plt.get_cmap("tab10")
    for m_index, method in enumerate(methods):
        sub = df[df["method"] == method]
        xs, ys, lo, hi = [], [], [], []
        for g_index, (backbone, env) in enumerate(groups):
            row = sub[(sub["backbone"] == backbone) & (sub["env_label"] == env)]
            if row.empty:
                continue
            r = row.iloc[0]
            xs.append(g_index + (m_index - (len(methods) - 1) / 2) * width)
            ys.append(r["reward"])
            lo.append(r["reward"] - r["reward_low"])
            hi.append(r["reward_high"] - r["reward"])
        ax.bar(xs, ys, width, yerr=[lo, hi], capsize=3, label=method, color=colors(m_index % 10))
    ax.set_xticks(range(len(groups)), [f"{b}\n{wrapped(e)}" for b, e in groups], fontsize=8)
    ax.set_ylabel("mean reward (progress - lambda x no-op rate)")
    ax.set_title("Held-out reward per backbone and method (95% bootstrap CI)")
    ax.axhline(0, color="black", linewidth=0.6)
    ax.legend(fontsize=8, ncol=2, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    _save(fig, path)


def plot_categories(df: pd.DataFrame, path: str) -> None:
    """Per (backbone, env) panel: success rate (bars) and mean progress (dots) per category and method."""
    plt = _pyplot()
    groups = list(dict.fromkeys(zip(df["backbone"], df["env_label"], strict=True)))
    methods = list(dict.fromkeys(df["method"]))
    colors = plt.get_cmap("tab10")
    fig, axes = plt.subplots(len(groups), 1, figsize=(8, 3.2 * len(groups)), squeeze=False)
    for ax, (backbone, env) in zip(axes[:, 0], groups, strict=True):
        sub = df[(df["backbone"] == backbone) & (df["env_label"] == env)]
        cats = list(dict.fromkeys(sub["category"]))
        width = 0.8 / max(1, len(methods))
        for m_index, method in enumerate(methods):
            rows = sub[sub["method"] == method].set_index("category").reindex(cats)
            xs = [i + (m_index - (len(methods) - 1) / 2) * width for i in range(len(cats))]
            color = colors(m_index % 10)
            ax.bar(xs, rows["success_rate"].fillna(0), width, color=color, label=method)
            ax.plot(xs, rows["progress"], "o", color=color, markeredgecolor="black", markersize=5)
        ax.set_xticks(range(len(cats)), cats)
        ax.set_ylim(0, 1.05)
        ax.set_ylabel("success rate (bars)\nmean progress (dots)")
        ax.set_title(wrapped(f"{backbone} on {env}: held-out success by task category", 48), fontsize=10)
    axes[0, 0].legend(fontsize=8, ncol=2, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    _save(fig, path)


def plot_swap(df: pd.DataFrame, path: str) -> None:
    """Heatmap per environment: rows whose MASA skills, columns who uses them, colour = paired change in
    reward vs the user's Base Skill; each cell also prints its 95% interval and flags one that excludes 0."""
    plt = _pyplot()
    envs = list(dict.fromkeys(df["env_label"]))
    fig, axes = plt.subplots(
        1, len(envs), figsize=(max(5, 2.2 * df["user"].nunique() + 2) * len(envs), 4.5), squeeze=False
    )
    for ax, env in zip(axes[0], envs, strict=True):
        sub = df[df["env_label"] == env]
        sources = list(dict.fromkeys(sub["source"]))
        users = list(dict.fromkeys(sub["user"]))
        grid = sub.pivot(index="source", columns="user", values="diff").reindex(index=sources, columns=users)
        limit = max(0.05, float(sub["diff"].abs().max()))
        image = ax.imshow(grid.to_numpy(dtype=float), cmap="RdBu", vmin=-limit, vmax=limit)
        for _, r in sub.iterrows():
            i, j = sources.index(r["source"]), users.index(r["user"])
            mark = " *" if r["excludes_zero"] else ""
            ax.text(
                j,
                i,
                f"{r['diff']:+.3f}{mark}\n[{r['diff_low']:+.3f}, {r['diff_high']:+.3f}]",
                ha="center",
                va="center",
                fontsize=9,
                color="black",
            )
        ax.set_xticks(range(len(users)), users)
        ax.set_yticks(range(len(sources)), sources)
        ax.set_xlabel("used by (backbone playing)")
        ax.set_ylabel("MASA skills of")
        ax.set_title(wrapped(f"{env}: reward change vs the user's Base Skill", 48), fontsize=10)
        fig.colorbar(image, ax=ax, label="paired reward difference", shrink=0.8)
    _save(fig, path)


def plot_hillclimb(candidates: list[dict[str, Any]], title: str, path: str) -> None:
    """Stage 1: each candidate's reward (with its interval) by iteration, accepted ones filled, and the
    incumbent's reward as a step line."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    best = None
    steps_x, steps_y = [], []
    for c in sorted(candidates, key=lambda c: c["iteration"]):
        s = c["summary"]
        kept = c.get("accepted") or c["iteration"] == 0
        ax.errorbar(
            c["iteration"],
            s["reward_mean"],
            yerr=[[s["reward_mean"] - s["reward_low"]], [s["reward_high"] - s["reward_mean"]]],
            fmt="o",
            color="tab:blue",
            markerfacecolor="tab:blue" if kept else "white",
            capsize=3,
        )
        if kept:
            best = s["reward_mean"]
        steps_x.append(c["iteration"])
        steps_y.append(best if best is not None else s["reward_mean"])
    ax.step(steps_x, steps_y, where="post", color="tab:orange", label="incumbent (best accepted)")
    ax.plot([], [], "o", color="tab:blue", label="accepted / initial")
    ax.plot([], [], "o", color="tab:blue", markerfacecolor="white", label="rejected")
    ax.set_xlabel("hill-climbing iteration (0 = initial library)")
    ax.set_ylabel("mean reward on the search suite")
    _min_span(ax)
    ax.set_xticks(sorted({c["iteration"] for c in candidates}))
    ax.set_title(title)
    ax.legend(fontsize=8)
    _save(fig, path)


def tree_layout(nodes: list[dict[str, Any]]) -> dict[str, tuple[float, int]]:
    """(x, depth) per node: leaves on consecutive x in child order, a parent centred over its children."""
    children = {n["node_id"]: list(n.get("children", [])) for n in nodes}
    known = set(children)
    roots = [n["node_id"] for n in nodes if not n.get("parent_id") or n["parent_id"] not in known]
    pos: dict[str, tuple[float, int]] = {}
    next_x = [0.0]

    def place(node_id: str, depth: int) -> float:
        kids = [k for k in children[node_id] if k in known]
        if not kids:
            x = next_x[0]
            next_x[0] += 1
        else:
            xs = [place(k, depth + 1) for k in kids]
            x = sum(xs) / len(xs)
        pos[node_id] = (x, depth)
        return x

    for root in roots:
        place(root, 0)
    return pos


def plot_tree(nodes: list[dict[str, Any]], best: str, title: str, path: str) -> None:
    """Stage 2's UCB tree: node colour = its own mean reward, label = reward and visits, best node ringed."""
    plt = _pyplot()
    pos = tree_layout(nodes)
    width = max(7.0, 1.3 * (max((x for x, _ in pos.values()), default=0) + 1) + 2.5)
    depth = max((d for _, d in pos.values()), default=0)
    fig, ax = plt.subplots(figsize=(min(width, 16), 1.6 * depth + 2.6))
    rewards = [n["summary"]["reward_mean"] for n in nodes]
    low, high = min(rewards, default=0.0), max(rewards, default=1.0)
    if high - low < 0.1:  # equal rewards should look equal, not span the whole colour map
        low, high = (low + high) / 2 - 0.05, (low + high) / 2 + 0.05
    cmap = plt.get_cmap("viridis")
    for n in nodes:
        if n.get("parent_id") in pos:
            (x0, y0), (x1, y1) = pos[n["parent_id"]], pos[n["node_id"]]
            ax.plot([x0, x1], [-y0, -y1], color="grey", zorder=1)
    for n in nodes:
        x, y = pos[n["node_id"]]
        r = n["summary"]["reward_mean"]
        shade = (r - low) / (high - low)
        ax.scatter(
            x,
            -y,
            s=900,
            color=cmap(shade),
            edgecolors="red" if n["node_id"] == best else "black",
            linewidths=3 if n["node_id"] == best else 1,
            zorder=2,
        )
        ax.annotate(
            f"R={r:.3f}\nn={n.get('visits', 0)}",
            (x, -y),
            xytext=(0, -27),
            textcoords="offset points",
            ha="center",
            va="top",
            fontsize=8,
        )
    mappable = plt.cm.ScalarMappable(cmap=cmap, norm=plt.Normalize(low, high))
    fig.colorbar(mappable, ax=ax, label="node's own mean reward", shrink=0.8)
    ax.set_yticks([-d for d in range(depth + 1)], [f"depth {d}" for d in range(depth + 1)])
    ax.set_xticks([])
    ax.set_ylim(-depth - 0.8, 0.5)
    xs = [x for x, _ in pos.values()] or [0]
    ax.set_xlim(min(xs) - 0.7, max(xs) + 0.7)
    ax.set_title(f"{title}\nR = node's own mean reward, n = visits, red ring = result", fontsize=10)
    for side in ("top", "right", "bottom"):
        ax.spines[side].set_visible(False)
    _save(fig, path)


def plot_message(text: str, path: str) -> None:
    """A figure that says why there is nothing to draw (the report still links every figure)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 1.5))
    ax.text(0.5, 0.5, text.strip(), ha="center", va="center", wrap=True)
    ax.axis("off")
    _save(fig, path)


def plot_granularity(df: pd.DataFrame, path: str) -> None:
    """Lines per environment: the paired change in held-out reward vs Base Skill at each level of detail,
    one line per backbone with 95% intervals; each backbone's best level circled."""
    plt = _pyplot()
    envs = list(dict.fromkeys(df["env"]))
    fig, axes = plt.subplots(1, len(envs), figsize=(6 * len(envs), 4.5), squeeze=False)
    colors = plt.get_cmap("tab10")
    for ax, env in zip(axes[0], envs, strict=True):
        sub = df[df["env"] == env]
        for b_index, (backbone, rows) in enumerate(sub.groupby("backbone", sort=False)):
            offset = (b_index - (sub["backbone"].nunique() - 1) / 2) * 0.06
            xs = rows["level"] + offset
            ax.errorbar(
                xs,
                rows["diff"],
                yerr=[rows["diff"] - rows["low"], rows["high"] - rows["diff"]],
                capsize=3,
                marker="o",
                label=backbone,
                color=colors(b_index % 10),
            )
            best = rows[rows["best"]]
            ax.scatter(best["level"] + offset, best["diff"], s=220, facecolors="none", edgecolors="black")
        levels = sorted(sub["level"].unique())
        names = {
            r["level"]: f"{r['level']}: {r['name']}\n({r['principle_words']} words)"
            for _, r in sub.iterrows()
        }
        ax.set_xticks(levels, [names[k] for k in levels], fontsize=8)
        ax.axhline(0, color="black", linewidth=0.6)
        ax.set_xlabel("level of detail of the same skills")
        ax.set_ylabel("reward change vs Base Skill (paired)")
        ax.set_title(
            wrapped(f"{env}: skill granularity per backbone (95% CI; circle = best)", 48), fontsize=10
        )
        _min_span(ax)
        ax.legend(fontsize=8)
    _save(fig, path)
