import SlipwayCLI

await SlipwayCommand.run()
