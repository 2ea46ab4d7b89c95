from model.synthetic.generate import main

main()
