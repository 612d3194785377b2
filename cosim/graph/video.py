"""Op rows of a text-to-video diffusion model: text encoder once, DiT x steps, VAE decoder once.

Geometry comes from `cosim.workloads.video` (latent shape through the VAE, tokens through the patch).
Under classifier-free guidance the text encoder and every DiT forward run on twice the batch (the
negative prompt); the VAE decodes each video once. DP splits that doubled batch.

DiT blocks by `dit.layout`:
- cross_attn (Wan, Cosmos): self-attention over the video tokens, cross-attention (q from video
  tokens, K/V projected from the text tokens; Wan I2V also attends `image_context_tokens` CLIP tokens
  through their own K/V and sums the two outputs), FFN; adaLN modulation around each.
- mmdit (HunyuanVideo, Open-Sora 2): dual-stream blocks (video and text each with their own
  projections and FFN, joint attention over video + text tokens), then single-stream parallel blocks
  over the joint sequence (one linear for q/k/v and the MLP input, one for the output).
- joint_expert_adaln (CogVideoX): one weight set over [text; video] with joint attention.
Norm + modulation + gated residual is one elementwise row per sub-block (LayerNorm 7, modulation 2,
gated residual 2 FLOPs per element); rotary is fused into attention; the MLP activation is fused into
the up-projection. The adaLN projections act on the (timestep) conditioning vector, one row per
sample, not per token. TP splits heads and MLP width (adaLN projections, embedders and the text
projection are replicated); SP splits the video (and joint) tokens, padding a remainder; the text
tokens of cross-attention are replicated on every SP chip.

The text encoder is an encoder-only transformer over `max_tokens` (non-causal, `layers_used` layers),
replicated on every chip (no TP/SP). The VAE decoder is one op carrying the spec's
`decoder_flops_per_pixel` x pixels x frames with the latent read and the RGB frames written; it runs
once per video on one chip, at the chip's vector (CUDA-core FP32) rate, not at a GEMM's: an estimate
for 3D-convolution decoders (causal convolutions over latent-frame chunks, FP32 GroupNorm; Diffusers
runs Wan's VAE in FP32) whose kernels reach a few percent of the tensor-core peak. A chip whose spec
gives no vector rate runs it at its matrix rate.
"""

from __future__ import annotations

import math

from cosim.errors import CosimInputError
from cosim.graph.attention import attention_core
from cosim.graph.moe import activation_flops_per_element, mlp_rows
from cosim.graph.optable import CommKind, OpKind, Stage
from cosim.graph.rows import (
    MODULATION_FLOPS_PER_ELEMENT,
    NORM_FLOPS_PER_ELEMENT,
    RESIDUAL_ADD_FLOPS,
    ROTARY_FLOPS_PER_ELEMENT,
    Dtypes,
    comm,
    elementwise,
    embedding,
    gemm,
)
from cosim.graph.sharding import Mapping, ceil_div, stage_layer_ranges
from cosim.specs.scenario import Scenario
from cosim.specs.workload import VideoDiT
from cosim.workloads.video import dit_tokens, latent_shape

_BLOCK_NORM_FLOPS = NORM_FLOPS_PER_ELEMENT["layernorm"] + MODULATION_FLOPS_PER_ELEMENT + 2.0  # + gated residual
_QK_NORM = {"none": (0.0, 0.0), "rms_head": (4.0, 2.0), "rms_full": (4.0, 2.0), "layernorm_head": (7.0, 4.0)}


def video_settings(model: VideoDiT, scenario: Scenario) -> dict:
    """frames, height, width, steps, cfg from the scenario, else the model's defaults."""
    d = model.defaults
    return {
        "frames": scenario.frames or d.frames, "height": scenario.height or d.height,
        "width": scenario.width or d.width, "steps": scenario.steps or d.steps,
        "cfg": d.cfg if scenario.cfg is None else scenario.cfg,
    }


class _Dit:
    """Per-chip geometry and row helpers for the DiT blocks of one step."""

    def __init__(self, model: VideoDiT, dt: Dtypes, m: Mapping, batch: int, tokens: int):
        self.model, self.dit, self.dt, self.m, self.B = model, model.dit, dt, m, batch
        dit = model.dit
        self.h = dit.hidden_size
        self.a_c = dit.num_heads * dit.head_dim // m.tp
        self.heads_c = dit.num_heads // m.tp
        self.N = tokens
        self.Lt = model.text_encoder.max_tokens
        self.lb = dit.linear_bias
        self.tdim = dit.timestep_dim or dit.hidden_size

    def loc(self, seq: int) -> int:
        return ceil_div(seq, self.m.sp)

    def norm(self, name: str, tokens: float, repeat: float, affine: bool | None = None,
             flops: float = _BLOCK_NORM_FLOPS) -> dict:
        affine = self.dit.norm_affine if affine is None else affine
        return elementwise(name, Stage.DIT, self.dt, self.B * tokens * self.h, flops, inputs=2.0, outputs=2.0,
                           weight_elements=2 * self.h if affine else 0.0, repeat=repeat)

    def modulation(self, name: str, vectors: int, repeat: float) -> list[dict]:
        dit, dt, B = self.dit, self.dt, self.B
        if not dit.adaln_modulation:
            return []
        if dit.modulation == "shared":  # Wan: a learned vectors x hidden table added to the shared projection
            return [elementwise(name, Stage.DIT, dt, B * vectors * self.h, RESIDUAL_ADD_FLOPS,
                                weight_elements=vectors * self.h, repeat=repeat)]
        if dit.modulation == "lora":
            r = dit.modulation_rank
            return [gemm(f"{name}.down", Stage.DIT, dt, B, self.h, r, bias=self.lb, repeat=repeat),
                    gemm(f"{name}.up", Stage.DIT, dt, B, r, vectors * self.h, bias=self.lb, repeat=repeat)]
        return [gemm(name, Stage.DIT, dt, B, self.tdim, vectors * self.h, bias=self.lb, repeat=repeat)]

    def qk_norm(self, name: str, q_tokens: float, k_tokens: float, repeat: float) -> list[dict]:
        flops, per_head = _QK_NORM[self.dit.qk_norm]
        if not flops:
            return []
        weights = per_head * (self.a_c if self.dit.qk_norm == "rms_full" else self.dit.head_dim)
        return [elementwise(name, Stage.DIT, self.dt, self.B * (q_tokens + k_tokens) * self.a_c, flops,
                            weight_elements=weights, repeat=repeat)]

    def sp_comms(self, name: str, seq_loc: float, repeat: float) -> list[dict]:
        """Sequence-parallel traffic around one attention core, per chip: an all-to-all of Q, K, V and the
        output among the Ulysses ranks, then (ring or USP hybrid) the K/V chunks of the ring ranks passed
        around the ring, ring - 1 hops of each rank's chunk (its S / ring tokens, heads / Ulysses)."""
        m, dt = self.m, self.dt
        if m.sp == 1:
            return []
        uly, ring = m.sp_ulysses, m.sp_ring
        elems = self.B * seq_loc * self.a_c  # one rank's share of one of Q, K, V or O
        rows = []
        if uly > 1:
            frac = (uly - 1) / uly
            rows += [comm(f"{name}.sp_a2a_qkv", Stage.DIT, dt, CommKind.ALL_TO_ALL, 3 * elems * dt.a * frac, uly,
                          repeat=repeat),
                     comm(f"{name}.sp_a2a_o", Stage.DIT, dt, CommKind.ALL_TO_ALL, elems * dt.a * frac, uly,
                          repeat=repeat)]
        if ring > 1:  # a K/V chunk after the all-to-all: (S / ring) x (heads / Ulysses) = seq_loc x all heads
            rows.append(comm(f"{name}.ring_kv", Stage.DIT, dt, CommKind.P2P, (ring - 1) * 2 * elems * dt.a, ring,
                             repeat=repeat))
        return rows

    def self_core(self, name: str, seq: int, repeat: float) -> dict:
        """Non-causal attention over `seq` tokens per sample, split by SP: the Ulysses ranks split the heads,
        the ring ranks the queries (each rank's queries meet every key, chunk by chunk)."""
        m, d, B = self.m, self.dit.head_dim, self.B
        heads = self.heads_c // m.sp_ulysses
        q_len = ceil_div(seq, m.sp_ring)
        pairs = float(seq) * seq / m.sp_ring
        return attention_core(name, Stage.DIT, self.dt, batch=B, heads=heads, kv_heads=heads, q_len=q_len,
                              kv_len=seq, head_dim=d, head_dim_v=d, pairs=pairs, causal=False,
                              act_in=B * heads * d * (q_len + 2 * seq), act_out=B * q_len * heads * d,
                              repeat=repeat)

    def tp_allreduce(self, name: str, tokens: float, repeat: float) -> list[dict]:
        if self.m.tp == 1:
            return []
        return [comm(name, Stage.DIT, self.dt, CommKind.ALL_REDUCE, self.B * tokens * self.h * self.dt.a, self.m.tp,
                     repeat=repeat)]

    def rotary(self, name: str, tokens: float, repeat: float) -> dict:
        return elementwise(name, Stage.DIT, self.dt, self.B * tokens * 2 * self.a_c, ROTARY_FLOPS_PER_ELEMENT,
                           fused=True, repeat=repeat)

    def ffn(self, name: str, tokens: float, repeat: float) -> list[dict]:
        mlp = self.dit.mlp
        return mlp_rows(name, Stage.DIT, self.dt, mlp, self.B * tokens, self.h, mlp.intermediate_size / self.m.tp,
                        repeat)

    # --- block layouts -------------------------------------------------------------------------
    def cross_attn_blocks(self, n: float) -> list[dict]:
        dit, dt, B, h, a_c = self.dit, self.dt, self.B, self.h, self.a_c
        N_loc, Lt = self.loc(self.N), self.Lt
        kv_in = h if dit.text_proj_layers or dit.text_refiner_layers else dit.text_dim
        rows = []
        if dit.modulation == "lora":
            for sub in ("self", "cross", "ffn"):
                rows += self.modulation(f"block.{sub}_modulation", 3, n)
        else:
            rows += self.modulation("block.modulation", 6, n)
        rows += [self.norm("block.self_norm", N_loc, n),
                 gemm("block.self.qkv_proj", Stage.DIT, dt, B * N_loc, h, 3 * a_c, bias=self.lb, repeat=n)]
        rows += self.qk_norm("block.self.qk_norm", N_loc, N_loc, n)
        rows.append(self.rotary("block.self.rotary", N_loc, n))
        rows += self.sp_comms("block.self", N_loc, n)
        rows.append(self.self_core("block.self.attention", self.N, n))
        rows.append(gemm("block.self.o_proj", Stage.DIT, dt, B * N_loc, a_c, h, bias=self.lb, repeat=n))
        rows += self.tp_allreduce("block.self.tp_allreduce", N_loc, n)
        # cross-attention: queries from the video tokens, keys/values from the (replicated) text tokens
        rows += [
            self.norm("block.cross_norm", N_loc, n, affine=dit.cross_attn_norm,
                      flops=NORM_FLOPS_PER_ELEMENT["layernorm"] + RESIDUAL_ADD_FLOPS),
            gemm("block.cross.q_proj", Stage.DIT, dt, B * N_loc, h, a_c, bias=self.lb, repeat=n),
            gemm("block.cross.kv_proj", Stage.DIT, dt, B * Lt, kv_in, 2 * a_c, bias=self.lb, repeat=n),
        ]
        rows += self.qk_norm("block.cross.qk_norm", N_loc, Lt, n)
        d = dit.head_dim
        rows.append(attention_core(
            "block.cross.attention", Stage.DIT, dt, batch=B, heads=self.heads_c, kv_heads=self.heads_c,
            q_len=N_loc, kv_len=Lt, head_dim=d, head_dim_v=d, pairs=float(N_loc) * Lt, causal=False,
            act_in=B * a_c * (N_loc + 2 * Lt), act_out=B * N_loc * a_c, repeat=n))
        rows += self.image_cross_rows(N_loc, n)
        rows.append(gemm("block.cross.o_proj", Stage.DIT, dt, B * N_loc, a_c, h, bias=self.lb, repeat=n))
        rows += self.tp_allreduce("block.cross.tp_allreduce", N_loc, n)
        rows.append(self.norm("block.ffn_norm", N_loc, n))
        rows += self.ffn("block.ffn", N_loc, n)
        rows += self.tp_allreduce("block.ffn.tp_allreduce", N_loc, n)
        return rows

    def image_cross_rows(self, N_loc: float, n: float) -> list[dict]:
        """Wan I2V: the same queries also attend the image tokens through their own K/V projections (with a key
        RMSNorm under qk_norm); the two attention outputs are summed before the output projection."""
        dit, dt, B, a_c = self.dit, self.dt, self.B, self.a_c
        Li = dit.image_context_tokens
        if not Li:
            return []
        d = dit.head_dim
        rows = [gemm("block.cross.img_kv_proj", Stage.DIT, dt, B * Li, self.h, 2 * a_c, bias=self.lb, repeat=n)]
        if dit.qk_norm != "none":
            flops, _ = _QK_NORM[dit.qk_norm]
            rows.append(elementwise("block.cross.img_k_norm", Stage.DIT, dt, B * Li * a_c, flops,
                                    weight_elements=a_c if dit.qk_norm == "rms_full" else d, repeat=n))
        rows += [attention_core("block.cross.img_attention", Stage.DIT, dt, batch=B, heads=self.heads_c,
                                kv_heads=self.heads_c, q_len=N_loc, kv_len=Li, head_dim=d, head_dim_v=d,
                                pairs=float(N_loc) * Li, causal=False, act_in=B * a_c * (N_loc + 2 * Li),
                                act_out=B * N_loc * a_c, repeat=n),
                 elementwise("block.cross.img_add", Stage.DIT, dt, B * N_loc * a_c, RESIDUAL_ADD_FLOPS, inputs=2.0,
                             repeat=n)]
        return rows

    def double_stream_blocks(self, n: float) -> list[dict]:
        dt, B, h, a_c = self.dt, self.B, self.h, self.a_c
        J = self.N + self.Lt
        rows = []
        for stream, seq in (("video", self.N), ("text", self.Lt)):
            s_loc = self.loc(seq)
            rows += self.modulation(f"double.{stream}.modulation", 6, n)
            rows += [self.norm(f"double.{stream}.attn_norm", s_loc, n),
                     gemm(f"double.{stream}.qkv_proj", Stage.DIT, dt, B * s_loc, h, 3 * a_c, bias=self.lb, repeat=n)]
            rows += self.qk_norm(f"double.{stream}.qk_norm", s_loc, s_loc, n)
            if stream == "video":
                rows.append(self.rotary("double.video.rotary", s_loc, n))
        rows += self.sp_comms("double", self.loc(J), n)
        rows.append(self.self_core("double.joint_attention", J, n))
        for stream, seq in (("video", self.N), ("text", self.Lt)):
            s_loc = self.loc(seq)
            rows.append(gemm(f"double.{stream}.o_proj", Stage.DIT, dt, B * s_loc, a_c, h, bias=self.lb, repeat=n))
            rows += self.tp_allreduce(f"double.{stream}.attn_tp_allreduce", s_loc, n)
            rows.append(self.norm(f"double.{stream}.ffn_norm", s_loc, n))
            rows += self.ffn(f"double.{stream}.ffn", s_loc, n)
            rows += self.tp_allreduce(f"double.{stream}.ffn_tp_allreduce", s_loc, n)
        return rows

    def single_stream_blocks(self, n: float) -> list[dict]:
        dt, B, h, a_c = self.dt, self.B, self.h, self.a_c
        J = self.N + self.Lt
        J_loc = self.loc(J)
        width = self.dit.mlp.intermediate_size / self.m.tp
        rows = self.modulation("single.modulation", 3, n)
        rows += [self.norm("single.norm", J_loc, n),
                 gemm("single.linear1_qkv_mlp", Stage.DIT, dt, B * J_loc, h, 3 * a_c + width, bias=self.lb, repeat=n),
                 elementwise("single.mlp_act", Stage.DIT, dt, B * J_loc * width,
                             activation_flops_per_element(self.dit.mlp), fused=True, repeat=n)]
        rows += self.qk_norm("single.qk_norm", J_loc, J_loc, n)
        rows.append(self.rotary("single.rotary", J_loc, n))
        rows += self.sp_comms("single", J_loc, n)
        rows.append(self.self_core("single.joint_attention", J, n))
        rows.append(gemm("single.linear2", Stage.DIT, dt, B * J_loc, a_c + width, h, bias=self.lb, repeat=n))
        rows += self.tp_allreduce("single.tp_allreduce", J_loc, n)
        return rows

    def joint_blocks(self, n: float) -> list[dict]:
        dt, B, h, a_c = self.dt, self.B, self.h, self.a_c
        J = self.N + self.Lt
        J_loc = self.loc(J)
        rows = []
        for sub in ("attn", "ffn"):
            rows += self.modulation(f"block.{sub}_modulation", 6, n)
        rows += [self.norm("block.attn_norm", J_loc, n),
                 gemm("block.qkv_proj", Stage.DIT, dt, B * J_loc, h, 3 * a_c, bias=self.lb, repeat=n)]
        rows += self.qk_norm("block.qk_norm", J_loc, J_loc, n)
        rows.append(self.rotary("block.rotary", J_loc, n))
        rows += self.sp_comms("block", J_loc, n)
        rows.append(self.self_core("block.joint_attention", J, n))
        rows.append(gemm("block.o_proj", Stage.DIT, dt, B * J_loc, a_c, h, bias=self.lb, repeat=n))
        rows += self.tp_allreduce("block.attn_tp_allreduce", J_loc, n)
        rows.append(self.norm("block.ffn_norm", J_loc, n))
        rows += self.ffn("block.ffn", J_loc, n)
        rows += self.tp_allreduce("block.ffn_tp_allreduce", J_loc, n)
        return rows

    def blocks(self, start: int, end: int, steps: float) -> list[dict]:
        """Blocks [start, end) of the stack, each run once per step."""
        dit = self.dit
        if dit.layout == "cross_attn":
            return self.cross_attn_blocks((end - start) * steps)
        if dit.layout == "joint_expert_adaln":
            return self.joint_blocks((end - start) * steps)
        n_double = max(0, min(end, dit.num_double_stream_layers) - start)
        rows = self.double_stream_blocks(n_double * steps) if n_double else []
        if end - start - n_double:
            rows += self.single_stream_blocks((end - start - n_double) * steps)
        return rows

    def step_extras(self, steps: float, first: bool, last: bool) -> list[dict]:
        """Per-step ops outside the blocks: embeddings and text projection (first stage), final layer (last)."""
        model, dit, dt, B, h = self.model, self.dit, self.dt, self.B, self.h
        N_loc = self.loc(self.N)
        rows = []
        if first:
            pt, ph, pw = dit.patch_size
            in_ch = dit.in_channels or model.vae.latent_channels
            rows.append(gemm("patch_embed", Stage.DIT, dt, B * N_loc, in_ch * pt * ph * pw, h, bias=self.lb,
                             repeat=steps))
            if dit.extra_input_embed_features:
                rows.append(gemm("cond_embed", Stage.DIT, dt, B * N_loc, dit.extra_input_embed_features, h,
                                 bias=self.lb, repeat=steps))
            if dit.image_embed_dim:  # Wan I2V MLPProj over the image tokens, every forward
                e, Li = dit.image_embed_dim, dit.image_context_tokens
                ln = NORM_FLOPS_PER_ELEMENT["layernorm"]
                rows += [elementwise("img_emb.norm_in", Stage.DIT, dt, B * Li * e, ln, weight_elements=2 * e,
                                     repeat=steps),
                         gemm("img_emb.fc1", Stage.DIT, dt, B * Li, e, e, bias=self.lb, repeat=steps),
                         elementwise("img_emb.act", Stage.DIT, dt, B * Li * e, activation_flops_per_element(dit.mlp),
                                     fused=True, repeat=steps),
                         gemm("img_emb.fc2", Stage.DIT, dt, B * Li, e, h, bias=self.lb, repeat=steps),
                         elementwise("img_emb.norm_out", Stage.DIT, dt, B * Li * h, ln, weight_elements=2 * h,
                                     repeat=steps)]
            rows += self._text_projection(steps)
            f, td = dit.timestep_freq_dim, self.tdim
            rows += [gemm("time_embed.fc1", Stage.DIT, dt, B, f, td, bias=self.lb, repeat=steps),
                     gemm("time_embed.fc2", Stage.DIT, dt, B, td, 3 * td if dit.modulation == "lora" else td,
                          bias=self.lb, repeat=steps)]
            if dit.modulation == "shared" and dit.adaln_modulation:
                rows.append(gemm("time_projection", Stage.DIT, dt, B, td, 6 * h, bias=self.lb, repeat=steps))
            if dit.guidance_embed:
                rows += [gemm("guidance_embed.fc1", Stage.DIT, dt, B, f, td, bias=self.lb, repeat=steps),
                         gemm("guidance_embed.fc2", Stage.DIT, dt, B, td, td, bias=self.lb, repeat=steps)]
            if dit.pooled_text_dim:
                rows += [gemm("pooled_text.fc1", Stage.DIT, dt, B, dit.pooled_text_dim, h, bias=self.lb, repeat=steps),
                         gemm("pooled_text.fc2", Stage.DIT, dt, B, h, h, bias=self.lb, repeat=steps)]
        if last:
            pt, ph, pw = dit.patch_size
            rows += self.modulation("final.modulation", 2, steps)
            rows += [self.norm("final.norm", N_loc, steps),
                     gemm("final.proj_out", Stage.DIT, dt, B * N_loc, h, pt * ph * pw * model.vae.latent_channels,
                          bias=self.lb, repeat=steps)]
        return rows

    def _text_projection(self, steps: float) -> list[dict]:
        dit, dt, B, h, Lt = self.dit, self.dt, self.B, self.h, self.Lt
        if dit.text_refiner_layers:  # HunyuanVideo token refiner: input projection + small transformer blocks
            n = dit.text_refiner_layers * steps
            a = dit.num_heads * dit.head_dim
            rows = [gemm("text_refiner.in_proj", Stage.DIT, dt, B * Lt, dit.text_dim, h, bias=self.lb, repeat=steps),
                    gemm("text_refiner.qkv_proj", Stage.DIT, dt, B * Lt, h, 3 * a, bias=self.lb, repeat=n),
                    attention_core("text_refiner.attention", Stage.DIT, dt, batch=B, heads=dit.num_heads,
                                   kv_heads=dit.num_heads, q_len=Lt, kv_len=Lt, head_dim=dit.head_dim,
                                   head_dim_v=dit.head_dim, pairs=float(Lt) * Lt, causal=False,
                                   act_in=3 * B * Lt * a, act_out=B * Lt * a, repeat=n),
                    gemm("text_refiner.o_proj", Stage.DIT, dt, B * Lt, a, h, bias=self.lb, repeat=n)]
            rows += mlp_rows("text_refiner.ffn", Stage.DIT, dt, dit.mlp, B * Lt, h, dit.mlp.intermediate_size, n)
            return rows
        rows = []
        for i in range(dit.text_proj_layers):
            rows.append(gemm(f"text_proj.fc{i + 1}", Stage.DIT, dt, B * Lt, dit.text_dim if i == 0 else h, h,
                             bias=self.lb, repeat=steps))
        return rows


def text_encoder_rows(model: VideoDiT, dt: Dtypes, batch: int) -> list[dict]:
    """An encoder-only transformer over `max_tokens` tokens, run once per request (non-causal)."""
    enc = model.text_encoder
    h, L, d, T = enc.hidden_size, enc.layers_used or enc.num_layers, enc.head_dim, enc.max_tokens
    heads, kv = enc.num_heads, enc.num_kv_heads or enc.num_heads
    st = Stage.TEXT_ENCODER
    norm = NORM_FLOPS_PER_ELEMENT["rmsnorm"] + RESIDUAL_ADD_FLOPS
    rows = [
        embedding("text_encoder.embed_tokens", st, dt, batch * T, h),
        elementwise("text_encoder.attn_norm", st, dt, batch * T * h, norm, inputs=2, outputs=2, weight_elements=h,
                    repeat=L),
        gemm("text_encoder.qkv_proj", st, dt, batch * T, h, (heads + 2 * kv) * d, repeat=L),
        attention_core("text_encoder.attention", st, dt, batch=batch, heads=heads, kv_heads=kv, q_len=T, kv_len=T,
                       head_dim=d, head_dim_v=d, pairs=float(T) * T, causal=False,
                       act_in=batch * T * (heads + 2 * kv) * d, act_out=batch * T * heads * d, repeat=L),
        gemm("text_encoder.o_proj", st, dt, batch * T, heads * d, h, repeat=L),
        elementwise("text_encoder.mlp_norm", st, dt, batch * T * h, norm, inputs=2, outputs=2, weight_elements=h,
                    repeat=L),
    ]
    rows += mlp_rows("text_encoder.mlp", st, dt, enc.mlp, batch * T, h, enc.mlp.intermediate_size, L)
    rows.append(elementwise("text_encoder.final_norm", st, dt, batch * T * h, norm, inputs=2, outputs=1,
                            weight_elements=h))
    return rows


def vae_row(model: VideoDiT, dt: Dtypes, batch: int, frames: int, height: int, width: int) -> dict:
    """The VAE decoder as one op with the spec's FLOPs per output pixel-frame, priced at the vector rate
    (elementwise kind; the GEMM shape stays for the op's size)."""
    vae = model.vae
    pixels = float(batch) * frames * height * width
    side = math.sqrt(vae.decoder_flops_per_pixel / 2.0)
    t, lh, lw = latent_shape(model, frames, height, width)
    row = gemm("vae.decode", Stage.VAE, dt, pixels, side, side, weight_bytes=(vae.decoder_params or 0.0) * dt.w)
    row["kind"] = int(OpKind.ELEMENTWISE)  # 3D-conv decoders run far below a GEMM's rate (module docstring)
    row["bytes_act_in"] = batch * vae.latent_channels * t * lh * lw * dt.a
    row["bytes_act_out"] = pixels * 3 * dt.a
    return row


def video_stage_rows(model: VideoDiT, scenario: Scenario, dt: Dtypes, m: Mapping) -> list[list[dict]]:
    """Rows of each pipeline stage (text encoder on the first, VAE on the last)."""
    vs = video_settings(model, scenario)
    factor = 2 if vs["cfg"] else 1
    if (scenario.batch * factor) % m.dp:
        raise CosimInputError(f"dp={m.dp} does not divide the batch ({scenario.batch} x {factor} with CFG)",
                              field="parallelism.dp")
    B = scenario.batch * factor // m.dp
    N = dit_tokens(model, vs["frames"], vs["height"], vs["width"])
    g = _Dit(model, dt, m, B, N)
    ranges = stage_layer_ranges(model.dit.num_layers, m.pp)
    steps = vs["steps"]
    stages = []
    for i, (start, end) in enumerate(ranges):
        first, last = i == 0, i == len(ranges) - 1
        rows = text_encoder_rows(model, dt, B) if first else []
        rows += g.step_extras(steps, first, last)
        rows += g.blocks(start, end, steps)
        if not last:
            rows.append(comm("pp_send_activations", Stage.DIT, dt, CommKind.P2P,
                             B * g.loc(N + (0 if model.dit.layout == "cross_attn" else g.Lt)) * g.h * dt.a, 2,
                             repeat=steps))
        else:
            rows.append(vae_row(model, dt, max(1, ceil_div(scenario.batch, m.dp)), vs["frames"], vs["height"],
                                vs["width"]))
        stages.append(rows)
    return stages
