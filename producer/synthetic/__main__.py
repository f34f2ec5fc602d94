import sys

from producer.synthetic.cli import main

sys.exit(main())
