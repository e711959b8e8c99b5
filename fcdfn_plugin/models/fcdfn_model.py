"""FCDFNModel: BasicSR's SRModel fed with a low-light *and* a flash image."""
import functools
import os
from collections import OrderedDict

import torch
from basicsr.models.sr_model import SRModel
from basicsr.utils import get_root_logger
from basicsr.utils.registry import MODEL_REGISTRY

from fcdfn_plugin.archs.unet_blocks import context_from_sums
from fcdfn_plugin.data.exposure import ExposureContract, estimate_exposure_ratio
from fcdfn_plugin.utils.tiling import count_tiles, tiled_forward, tiled_weighted_sum

#: Defaults of the ``val: tile:`` options (tiled inference for large images).
TILE_DEFAULTS = {'size': 512, 'overlap': 64, 'edge_margin': None, 'min_pixels': 1024 * 1024, 'context_overlap': 16}
#: Per-sample noise sigmas a network with ``needs_noise_level`` gets (keys of the dataset's ``params``).
NOISE_LEVEL_KEYS = ('sigma_read', 'sigma_shot')
#: Values of ``train.amp``: the autocast dtype of the training forward pass (``~``: off, float32).
AMP_DTYPES = {'bf16': torch.bfloat16, 'fp16': torch.float16}


@MODEL_REGISTRY.register()
class FCDFNModel(SRModel):
    """SRModel for flash / no-flash pairs; overrides only what differs.

    * ``feed_data`` takes ``lq``, ``flash`` (and ``gt``) and the network is called as
      ``net_g(lq, flash)``. A network with ``needs_noise_level = True`` (DeepFnFArch, variant
      official) is called as ``net_g(lq, flash, sigma_read=..., sigma_shot=...)`` with the per-sample
      sigmas of the batch's ``params`` (the dataset's; test sets: ``params.json``); a batch without
      them is an error naming what is missing. One with ``needs_exposure_ratio`` (DeepFnFArch,
      ``output_gain: exposure``) gets ``exposure_ratio=``, estimated on the photo it sees
      (:func:`network_inputs`).
    * ``optimize_parameters`` logs each term of the loss when the loss exposes them (``FCDFNLoss``
      does), stops with an error naming the iteration when the loss is not finite, and clips the
      gradient norm to ``train.grad_clip_norm`` when that is set. Subclasses change the loss by
      overriding :meth:`compute_losses` only (``DSNModel``).
    * ``train.amp: bf16 | fp16 | ~`` (default ``~``, off): the network's training forward runs under
      ``torch.autocast`` with that dtype (:meth:`forward_train`); its output is cast to float32, so
      the loss, the backward of the loss and validation (never autocast) are float32. ``fp16`` scales
      the loss with ``torch.amp.GradScaler`` (unscaled before ``grad_clip_norm`` clips; steps with
      inf/NaN gradients are skipped and the scale halved); ``bf16`` needs no scaler. Both work on CPU
      and CUDA. The scaler's state (scale, growth tracker) is saved with BasicSR's training state
      (key ``grad_scaler``) and restored on resume, so a resumed fp16 run continues with the same
      scale; a state without it (written before, or by a float32 run) restarts the scale, with a
      warning.
    * ``train.channels_last: true`` (default false): the network's weights and the batches are kept
      in channels-last memory format: oneDNN's faster convolutions on CPU (train step up to 1.4x on 2 cores,
      docs/RESULTS.md "CPU speed"; the CPU presets set it) and tensor-core convolutions on GPUs.
    * ``exposure:`` (an options section, :class:`fcdfn_plugin.data.exposure.ExposureContract`):
      ``feed_data`` brings every no-flash photo into the network's exposure band before the network
      sees it (training, validation and ``tools/test.py`` alike; the exposure ratio estimated from
      the photo, as for a user's photo). No section: the input as it is (the paper).
    * ``test`` runs the bare network (never the DDP wrapper, so validation on rank 0 cannot
      deadlock), and above ``val.tile.min_pixels`` pixels runs it tile by tile with blended
      overlaps, so a 12-megapixel pair fits in bounded memory.

    Options (besides SRModel's): ``val.tile.size`` (default 512), ``val.tile.overlap`` (64),
    ``val.tile.edge_margin`` (zero-weight pixels at shared tile sides, default overlap // 4),
    ``val.tile.min_pixels`` (1048576; images with fewer pixels run in one piece),
    ``val.tile.context_overlap`` (16: the overlap of the first, context pass; see :func:`enhance_pair`).
    """

    def __init__(self, opt):
        # read before SRModel.__init__, which builds the network (model_to_device) and the optimiser
        self.amp_dtype, self.channels_last = training_precision(opt)
        self.exposure = ExposureContract.from_options(opt)
        self.grad_scaler = None
        super().__init__(opt)
        tile_opt = (opt.get('val') or {}).get('tile') or {}
        unknown = set(tile_opt) - set(TILE_DEFAULTS)
        if unknown:
            raise ValueError(f'Unknown val.tile option(s) {sorted(unknown)}; expected {sorted(TILE_DEFAULTS)}.')
        self.tile_opt = {**TILE_DEFAULTS, **tile_opt}
        if self.tile_opt['overlap'] * 2 >= self.tile_opt['size']:
            raise ValueError(f"val.tile.overlap ({self.tile_opt['overlap']}) must be less than half of "
                             f"val.tile.size ({self.tile_opt['size']}).")

    def model_to_device(self, net):
        if self.channels_last:  # before any DistributedDataParallel wrapping
            net = net.to(memory_format=torch.channels_last)
        return super().model_to_device(net)

    def init_training_settings(self):
        super().init_training_settings()
        if self.amp_dtype == torch.float16:
            self.grad_scaler = torch.amp.GradScaler(self.device.type)

    def save_training_state(self, epoch, current_iter):
        """BasicSR's training state (epoch, iteration, optimisers, schedulers) plus the fp16 GradScaler's.

        Written to a temporary name and renamed, so a run killed while saving never leaves a truncated
        state under the final name."""
        if self.grad_scaler is None or current_iter == -1:
            return super().save_training_state(epoch, current_iter)
        state = {'epoch': epoch, 'iter': current_iter, 'optimizers': [o.state_dict() for o in self.optimizers],
                 'schedulers': [s.state_dict() for s in self.schedulers],
                 'grad_scaler': self.grad_scaler.state_dict()}
        path = os.path.join(self.opt['path']['training_states'], f'{current_iter}.state')
        torch.save(state, f'{path}.partial')
        os.replace(f'{path}.partial', path)

    def resume_training(self, resume_state):
        super().resume_training(resume_state)
        saved = resume_state.get('grad_scaler')
        if self.grad_scaler is not None:
            if saved is None:
                get_root_logger().warning('The training state has no GradScaler state (written by a float32 run or '
                                          'an older version): the fp16 loss scale starts again from its initial value.')
            else:
                self.grad_scaler.load_state_dict(saved)

    def _to_device(self, tensor):
        tensor = tensor.to(self.device)
        return tensor.contiguous(memory_format=torch.channels_last) if self.channels_last else tensor

    def feed_data(self, data):
        for key in ('lq', 'flash'):
            if key not in data:
                raise KeyError(f'FCDFNModel needs "{key}" in every batch; the dataset gave {sorted(data)}.')
        lq, self.exposure_gain = self.exposure.apply(data['lq'])
        self.lq = self._to_device(lq)
        self.flash = self._to_device(data['flash'])
        if 'gt' in data:
            self.gt = self._to_device(data['gt'])
        params = data.get('params') or {}
        self.noise_level = None
        if all(key in params for key in NOISE_LEVEL_KEYS):
            self.noise_level = {key: torch.as_tensor(params[key]).to(self.device, self.lq.dtype).reshape(-1)
                                for key in NOISE_LEVEL_KEYS}

    def network_kwargs(self):
        """Extra keyword arguments of the network for the current batch (noise level, exposure ratio: what
        it asks for; see :func:`network_inputs`)."""
        return network_inputs(self.get_bare_model(self.net_g), self.lq, self.noise_level)

    def optimize_parameters(self, current_iter):
        self.optimizer_g.zero_grad()
        loss_dict = self.compute_losses()
        l_total = loss_dict['l_total']
        if not torch.isfinite(l_total):
            raise FloatingPointError(
                f'Non-finite loss ({l_total.item()}) at iteration {current_iter}; stopping. Lower the learning '
                'rate, or resume from the last checkpoint with --auto_resume.')

        clip_norm = self.opt['train'].get('grad_clip_norm')
        scaler = self.grad_scaler
        (l_total if scaler is None else scaler.scale(l_total)).backward()
        if clip_norm:
            if scaler is not None:
                scaler.unscale_(self.optimizer_g)  # clip the true gradients, not the scaled ones
            torch.nn.utils.clip_grad_norm_(self.net_g.parameters(), float(clip_norm))
        if scaler is None:
            self.optimizer_g.step()
        else:
            scaler.step(self.optimizer_g)  # skipped when the scaled gradients are not finite
            scaler.update()
        self.log_dict = self.reduce_loss_dict(loss_dict)
        if self.ema_decay > 0:
            self.model_ema(decay=self.ema_decay)

    def forward_train(self, *args, **kwargs):
        """``net_g(*args, **kwargs)`` under ``train.amp``'s autocast; floating outputs (a tensor or a
        tuple of them) come back as float32, so losses are computed in float32."""
        if self.amp_dtype is None:
            return self.net_g(*args, **kwargs)
        with torch.autocast(self.device.type, dtype=self.amp_dtype):
            output = self.net_g(*args, **kwargs)
        if isinstance(output, (tuple, list)):
            return type(output)(_as_float32(item) for item in output)
        return _as_float32(output)

    def compute_losses(self):
        """Run the network on the batch (``self.output``) and return the loss terms, ``l_total`` last."""
        self.output = self.forward_train(self.lq, self.flash, **self.network_kwargs())
        loss_dict = OrderedDict()
        if hasattr(self.cri_pix, 'terms'):  # FCDFNLoss: log each term
            terms = self.cri_pix.terms(self.output, self.gt)
            l_total = terms.pop('l_total')
            loss_dict.update(terms)
        else:
            l_total = self.cri_pix(self.output, self.gt)
        loss_dict['l_total'] = l_total
        return loss_dict

    def _inference_network(self):
        if hasattr(self, 'net_g_ema'):
            return self.net_g_ema
        return self.get_bare_model(self.net_g)

    def enhance(self, lq, flash, noise_level=None):
        """Enhanced image for one (B,3,H,W) pair on the model's device, tiled above the size option.

        ``noise_level``: {'sigma_read', 'sigma_shot'} (B,) for networks that need it (see :func:`enhance_pair`).
        """
        return enhance_pair(self._inference_network(), lq, flash, noise_level=noise_level, **self.tile_opt)

    def test(self):
        self.output = self.enhance(self.lq, self.flash, self.noise_level)

    def get_current_visuals(self):
        visuals = super().get_current_visuals()
        visuals['flash'] = self.flash.detach().cpu()
        return visuals

    def nondist_validation(self, dataloader, current_iter, tb_logger, save_img):
        super().nondist_validation(dataloader, current_iter, tb_logger, save_img)
        del self.flash  # the parent frees lq/gt/output only


def training_precision(opt):
    """``(autocast dtype or None, channels_last)`` from ``opt['train']`` (``amp``, ``channels_last``), checked."""
    train = (opt.get('train') or {}) if opt.get('is_train') else {}
    amp = train.get('amp')
    if amp is not None and amp not in AMP_DTYPES:
        raise ValueError(f'train.amp must be one of {sorted(AMP_DTYPES)} or ~ (off, float32), got {amp!r}')
    channels_last = train.get('channels_last', False)
    if not isinstance(channels_last, bool):
        raise ValueError(f'train.channels_last must be true or false, got {channels_last!r}')
    return AMP_DTYPES.get(amp), channels_last


def _as_float32(value):
    return value.float() if torch.is_tensor(value) and value.is_floating_point() else value


def noise_level_tensors(values, device=None):
    """``{'sigma_read', 'sigma_shot'}`` as (1,) float tensors from a mapping of numbers (one image)."""
    return {key: torch.tensor([float(values[key])], device=device) for key in NOISE_LEVEL_KEYS}


def noise_level_kwargs(net, noise_level):
    """``noise_level`` ({'sigma_read', 'sigma_shot'}) as keyword arguments if ``net.needs_noise_level``, else {}.

    A network that needs it and gets none is a ``ValueError`` saying where the sigmas come from.
    """
    if not getattr(net, 'needs_noise_level', False):
        return {}
    if not noise_level or any(key not in noise_level for key in NOISE_LEVEL_KEYS):
        raise ValueError(f'{type(net).__name__} needs the noise level of each sample ({", ".join(NOISE_LEVEL_KEYS)}); '
                         'the batch has none. FlashLowLightDataset gives them in "params" (training: always; '
                         'test sets: from params.json, written by tools/prepare_faid.py).')
    return {key: noise_level[key] for key in NOISE_LEVEL_KEYS}


def network_inputs(net, lq, noise_level=None):
    """The per-sample inputs ``net`` asks for besides ``(lq, flash)``, as keyword arguments.

    ``sigma_read`` / ``sigma_shot`` from ``noise_level`` when ``net.needs_noise_level`` (see
    :func:`noise_level_kwargs`); ``exposure_ratio`` (B,) when ``net.needs_exposure_ratio``: estimated
    from ``lq``, the (whole) low-light photo the network sees, after any exposure contract
    (:func:`~fcdfn_plugin.data.exposure.estimate_exposure_ratio`), so training, validation and
    tiled inference compute it the same way.
    """
    extra = noise_level_kwargs(net, noise_level)
    if getattr(net, 'needs_exposure_ratio', False):
        extra['exposure_ratio'] = estimate_exposure_ratio(lq.float()).to(lq.dtype)
    return extra


def enhance_pair(net, lq, flash, size=TILE_DEFAULTS['size'], overlap=TILE_DEFAULTS['overlap'],
                 edge_margin=TILE_DEFAULTS['edge_margin'], min_pixels=TILE_DEFAULTS['min_pixels'], progress=None,
                 noise_level=None, exposure=None, exposure_ratio=None, relative_exposure=None,
                 context_overlap=TILE_DEFAULTS['context_overlap']):
    """Run ``net(lq, flash)`` in eval mode without gradients; tiled when H*W >= ``min_pixels``.

    ``exposure`` (an :class:`~fcdfn_plugin.data.exposure.ExposureContract`, or None: the input as
    it is) first brings ``lq`` into the network's exposure band, with ``exposure_ratio`` (known
    ratio) and ``relative_exposure`` (no-flash over flash exposure, from EXIF) when given.

    Tiles of ``size`` pixels overlap by ``overlap`` and are blended smoothly (see
    :func:`fcdfn_plugin.utils.tiling.tiled_forward`), aligned to the network's ``pad_multiple``.
    The basis decoders see the image only through the global average of the encoder features; for
    a network that exposes ``encode_context`` (FCDFNArch, DeepFnFArch) a first pass accumulates that
    average over all tiles, so every tile is filtered with the bases of the *whole* image, as
    untiled inference would. That average hardly depends on the tiles' borders (overlap 16 and 128
    give contexts within 2e-7 relative of each other on a 1.5 MP photo), so the first pass uses tiles
    of the same size with only ``context_overlap`` pixels of overlap: fewer tiles than the second pass.
    ``progress(done, total)`` counts the tile runs of both passes.

    On CPU the tiles are handed to the network in channels-last memory format (oneDNN's faster
    convolutions: a 512-pixel tile of the shipped model 1.17 -> 1.10 s, its encoders 0.40 -> 0.26 s).
    ``noise_level`` ({'sigma_read', 'sigma_shot'}, (B,) each) is passed to every call of a network
    with ``needs_noise_level`` (per-sample values, so tiles take them unchanged); such a network
    without it is a ``ValueError``. A network with ``needs_exposure_ratio`` gets the ratio estimated
    on the whole image (:func:`network_inputs`), the same for every tile.
    """
    if exposure is not None:
        lq, _ = exposure.apply(lq, exposure_ratio, relative_exposure)
    extra = network_inputs(net, lq, noise_level)
    was_training = net.training
    net.eval()
    try:
        with torch.no_grad():
            height, width = lq.shape[-2:]
            if height * width < min_pixels:
                return net(lq, flash, **extra)
            multiple = getattr(net, 'pad_multiple', 1)
            tiling = dict(tile=size, overlap=overlap, multiple=multiple, edge_margin=edge_margin)
            context_tiling = dict(tile=size, overlap=min(context_overlap, overlap), multiple=multiple)
            passes = [context_tiling, tiling] if hasattr(net, 'encode_context') else [tiling]
            counts = [count_tiles(height, width, plan['tile'], plan['overlap'], multiple) for plan in passes]

            def report(pass_index):  # progress over both passes: (done, total) of all tile runs
                if progress is None:
                    return None
                return lambda done, _: progress(sum(counts[:pass_index]) + done, sum(counts))

            def run(fn):  # tiles in the memory format the device's convolutions prefer
                if lq.device.type != 'cpu':
                    return fn
                return lambda *tensors: fn(*(tensor.contiguous(memory_format=torch.channels_last) if tensor.dim() == 4
                                             else tensor for tensor in tensors))

            fn = functools.partial(net, **extra)
            if len(passes) == 2:
                sums = tiled_weighted_sum(run(functools.partial(net.encode_context, **extra)), [lq, flash],
                                          progress=report(0), **context_tiling)
                fn = functools.partial(net, context=context_from_sums(sums), **extra)
            return tiled_forward(run(fn), [lq, flash], progress=report(len(passes) - 1), **tiling).contiguous()
    finally:
        net.train(was_training)
