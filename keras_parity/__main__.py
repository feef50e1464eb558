import sys

from keras_parity.cli import main

sys.exit(main())
