"""keras.applications.ResNet50, random weights, logits out."""

import keras


def resnet50():
    """At ImageNet's 224x224: the logits users get."""
    x = keras.Input((224, 224, 3), name="x")
    return keras.applications.ResNet50(weights=None, input_tensor=x, classifier_activation=None, name="resnet50")


def resnet50_64():
    """The same network at 64x64, for the training path: gradients and Adam's steps go through
    every layer as at 224, at a twelfth of the arithmetic. 64, not ResNet50's smallest 32: the
    last stage keeps 2x2 positions, so its training-mode BatchNormalizations take their
    statistics over 8 values, not 2 (two values normalize to +-1 whatever they are)."""
    x = keras.Input((64, 64, 3), name="x")
    return keras.applications.ResNet50(weights=None, input_tensor=x, classifier_activation=None, name="resnet50")
