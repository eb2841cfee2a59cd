"""Tiny models of every family Genie supports, built from transformers configs
with a fixed seed (nothing is downloaded), and the inputs each one takes.

``FAMILIES[name]`` is ``(build, inputs, output)``: ``build(seed)`` returns the
model in eval mode, ``inputs(batch, generator)`` the keyword arguments of one
forward call (CPU tensors), ``output(result)`` the tensor compared with eager
PyTorch (logits, or the last hidden state of models without a head).
Widths are small but every structural feature of the family is there:
grouped-query attention (fewer key/value heads than query heads), rotary
embeddings, RMSNorm, SwiGLU, top-k expert routing, relative position buckets,
convolutions with stride/padding/groups, batch norm, pooling.
"""

import torch

SEQ = 11


def _ids(vocab, seq=SEQ):
    def inputs(batch, g):
        return {"input_ids": torch.randint(0, vocab, (batch, seq), generator=g)}
    return inputs


def _pixels(channels, size):
    def inputs(batch, g):
        return {"pixel_values": torch.randn(batch, channels, size, size, generator=g)}
    return inputs


def _logits(o):
    return o.logits


def _hidden(o):
    return o.last_hidden_state


def _seeded(make):
    def build(seed=0):
        torch.manual_seed(seed)
        return make().eval()
    return build


_DECODER = dict(vocab_size=256, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                initializer_range=0.1)


def llama():
    from transformers import LlamaConfig, LlamaForCausalLM
    return LlamaForCausalLM(LlamaConfig(**_DECODER))


def mistral():
    from transformers import MistralConfig, MistralForCausalLM
    return MistralForCausalLM(MistralConfig(**_DECODER))


def qwen2():
    from transformers import Qwen2Config, Qwen2ForCausalLM
    return Qwen2ForCausalLM(Qwen2Config(**_DECODER))


def mixtral():
    from transformers import MixtralConfig, MixtralForCausalLM
    return MixtralForCausalLM(MixtralConfig(**_DECODER, num_local_experts=4,
                                            num_experts_per_tok=2))


def t5():
    from transformers import T5Config, T5ForConditionalGeneration
    return T5ForConditionalGeneration(T5Config(vocab_size=256, d_model=64, d_kv=16, d_ff=128,
                                               num_layers=2, num_heads=4,
                                               decoder_start_token_id=0))


def _t5_inputs(batch, g):
    return {"input_ids": torch.randint(0, 256, (batch, SEQ), generator=g),
            "decoder_input_ids": torch.randint(0, 256, (batch, 5), generator=g)}


def bert():
    from transformers import BertConfig, BertModel
    return BertModel(BertConfig(vocab_size=256, hidden_size=64, intermediate_size=128,
                                num_hidden_layers=2, num_attention_heads=4))


def vit():
    from transformers import ViTConfig, ViTForImageClassification
    return ViTForImageClassification(ViTConfig(image_size=32, patch_size=8, hidden_size=64,
                                               num_hidden_layers=2, num_attention_heads=4,
                                               intermediate_size=128, num_labels=10))


def resnet():
    from transformers import ResNetConfig, ResNetForImageClassification
    return ResNetForImageClassification(ResNetConfig(embedding_size=16, hidden_sizes=[16, 32],
                                                     depths=[1, 1], num_labels=10))


def clip_vision():
    from transformers import CLIPVisionConfig, CLIPVisionModel
    return CLIPVisionModel(CLIPVisionConfig(image_size=32, patch_size=8, hidden_size=64,
                                            intermediate_size=128, num_hidden_layers=2,
                                            num_attention_heads=4))


_WHISPER = dict(vocab_size=256, d_model=64, encoder_layers=2, decoder_layers=2,
                encoder_attention_heads=4, decoder_attention_heads=4, encoder_ffn_dim=128,
                decoder_ffn_dim=128, num_mel_bins=16, max_source_positions=32,
                max_target_positions=32, pad_token_id=1, bos_token_id=2, eos_token_id=3,
                decoder_start_token_id=2)


def whisper():
    from transformers import WhisperConfig, WhisperForConditionalGeneration
    return WhisperForConditionalGeneration(WhisperConfig(**_WHISPER))


def whisper_encoder():
    from transformers import WhisperConfig
    from transformers.models.whisper.modeling_whisper import WhisperEncoder
    return WhisperEncoder(WhisperConfig(**_WHISPER))


def _audio(batch, g):
    # (batch, mel bins, frames): the encoder's two convs halve 64 frames to 32.
    return {"input_features": torch.randn(batch, 16, 64, generator=g)}


def _whisper_inputs(batch, g):
    return dict(_audio(batch, g), decoder_input_ids=torch.randint(0, 256, (batch, 5), generator=g))


# Families whose capture needs aten.convolution, which the executor does not
# have yet (issue 14 is open for it): listed here, tested once it lands.
NEEDS_CONVOLUTION = ("vit", "resnet", "clip_vision", "whisper", "whisper_encoder")

FAMILIES = {
    "llama":           (_seeded(llama), _ids(256), _logits),
    "mistral":         (_seeded(mistral), _ids(256), _logits),
    "qwen2":           (_seeded(qwen2), _ids(256), _logits),
    "mixtral":         (_seeded(mixtral), _ids(256), _logits),
    "t5":              (_seeded(t5), _t5_inputs, _logits),
    "bert":            (_seeded(bert), _ids(256), _hidden),
    "vit":             (_seeded(vit), _pixels(3, 32), _logits),
    "resnet":          (_seeded(resnet), _pixels(3, 32), _logits),
    "clip_vision":     (_seeded(clip_vision), _pixels(3, 32), _hidden),
    "whisper":         (_seeded(whisper), _whisper_inputs, _logits),
    "whisper_encoder": (_seeded(whisper_encoder), _audio, _hidden),
}

CAUSAL_LMS = ("llama", "mistral", "qwen2", "mixtral")
