"""keras.applications.ResNet50, random weights, logits out."""

import keras


def resnet50():
    x = keras.Input((224, 224, 3), name="x")
    return keras.applications.ResNet50(weights=None, input_tensor=x, classifier_activation=None, name="resnet50")
