"""The LEAF network: autoencoder, image encoder and U-Net backbone from diffusers, presets,
pretrained-weight import, and the training-only teachers and projector.

Import from the modules (``leafnet.models.network``, ``leafnet.models.presets``, ...): this
package stays light so that planning can read the presets without loading torch.
"""
